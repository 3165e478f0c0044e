package agent

// DescribeUserScramCredentials (key 50) and AlterUserScramCredentials
// (key 51): v0.
//
// Credentials are SCRAM-SHA-256 and SCRAM-SHA-512, stored in etcd as salt,
// iterations, StoredKey and ServerKey (the upsertion's salted password is
// used once to derive the keys and then dropped). Describe needs DESCRIBE
// on the cluster, alter needs ALTER on the cluster, when authorization is
// on. Iterations must be 4096..16384, as in Kafka. A user named twice in
// one alter request is DUPLICATE_RESOURCE for each, as in Kafka. SASL/PLAIN
// logins check the SCRAM-SHA-256 credential, so a user who should log in
// with PLAIN needs one.

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shale-dev/shale/auth"
	"github.com/shale-dev/shale/metastore"
)

func init() {
	register(kmsg.DescribeUserSCRAMCredentials, 0, 0, (*Server).handleDescribeUserSCRAMCredentials, inHandler[*kmsg.DescribeUserSCRAMCredentialsRequest](kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeCluster))
	register(kmsg.AlterUserSCRAMCredentials, 0, 0, (*Server).handleAlterUserSCRAMCredentials, inHandler[*kmsg.AlterUserSCRAMCredentialsRequest](kmsg.ACLOperationAlter, kmsg.ACLResourceTypeCluster))
}

func (s *Server) handleDescribeUserSCRAMCredentials(ctx context.Context, rc *reqCtx, req *kmsg.DescribeUserSCRAMCredentialsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !s.who(rc).canCluster(kmsg.ACLOperationDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return now(resp)
	}
	var names []string
	for _, u := range req.Users {
		names = append(names, u.Name)
	}
	creds, err := s.meta.ListCredentials(ctx, names...)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errCode(s.log, "describe scram credentials", err), errMessage(err)
		return now(resp)
	}
	byUser := map[string][]metastore.UserCredential{}
	var order []string
	for _, c := range creds {
		if _, ok := byUser[c.User]; !ok {
			order = append(order, c.User)
		}
		byUser[c.User] = append(byUser[c.User], c)
	}
	if req.Users != nil {
		order = names
	}
	seen := map[string]int{}
	for _, n := range names {
		seen[n]++
	}
	for _, u := range order {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = u
		switch {
		case seen[u] > 1:
			r.ErrorCode = kerr.DuplicateResource.Code
		case len(byUser[u]) == 0:
			r.ErrorCode = kerr.ResourceNotFound.Code
			r.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("user %q has no credentials", u))
		}
		for _, c := range byUser[u] {
			if r.ErrorCode != 0 {
				break
			}
			ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
			ci.Mechanism, ci.Iterations = auth.KafkaMechanismNumber(c.Mechanism), int32(c.Iterations)
			r.CredentialInfos = append(r.CredentialInfos, ci)
		}
		resp.Results = append(resp.Results, r)
	}
	return now(resp)
}

func (s *Server) handleAlterUserSCRAMCredentials(ctx context.Context, rc *reqCtx, req *kmsg.AlterUserSCRAMCredentialsRequest) (reply, error) {
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	allowed := s.who(rc).canCluster(kmsg.ACLOperationAlter)
	count := map[string]int{}
	for _, d := range req.Deletions {
		count[d.Name]++
	}
	for _, u := range req.Upsertions {
		count[u.Name]++
	}
	result := func(user string, err error, code int16) {
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User, r.ErrorCode, r.ErrorMessage = user, code, errMessage(err)
		resp.Results = append(resp.Results, r)
	}
	check := func(user string, mech int8) (string, int16, error) {
		m := auth.KafkaMechanism(mech)
		switch {
		case !allowed:
			return "", kerr.ClusterAuthorizationFailed.Code, nil
		case user == "":
			return "", kerr.UnacceptableCredential.Code, errors.New("empty user name")
		case count[user] > 1:
			return "", kerr.DuplicateResource.Code, errors.New("user named more than once")
		case m == "":
			return "", kerr.UnsupportedSaslMechanism.Code, fmt.Errorf("unknown SCRAM mechanism %d", mech)
		}
		return m, 0, nil
	}
	for _, d := range req.Deletions {
		m, code, err := check(d.Name, d.Mechanism)
		if code == 0 {
			err = s.meta.DeleteCredential(ctx, d.Name, m)
			switch {
			case errors.Is(err, metastore.ErrUserNotFound):
				code = kerr.ResourceNotFound.Code
			case err != nil:
				code = errCode(s.log, "delete scram credential", err)
			default:
				s.log.Info("SCRAM credential deleted", "user", d.Name, "mechanism", m, "by", s.who(rc).principal)
			}
		}
		result(d.Name, err, code)
	}
	for _, u := range req.Upsertions {
		m, code, err := check(u.Name, u.Mechanism)
		if code == 0 {
			var cred auth.Credential
			cred, err = auth.CredentialFromSalted(m, u.SaltedPassword, u.Salt, int(u.Iterations))
			if err != nil {
				code = kerr.UnacceptableCredential.Code
			} else if err = s.meta.PutCredential(ctx, u.Name, cred); err != nil {
				code = errCode(s.log, "put scram credential", err)
				if errors.Is(err, metastore.ErrInvalid) {
					code = kerr.UnacceptableCredential.Code
				}
			} else {
				s.log.Info("SCRAM credential set", "user", u.Name, "mechanism", m, "by", s.who(rc).principal)
			}
		}
		result(u.Name, err, code)
	}
	return now(resp)
}
