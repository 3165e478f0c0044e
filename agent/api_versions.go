package agent

// ApiVersions (key 18): v0-v5.
//
// The advertised keys and version ranges are built from the registry, so
// they always match what is handled. A request at a version outside v0-v5
// is answered in the v0 format with UNSUPPORTED_VERSION and the full list
// (see decode), as Kafka does, so the client retries at a version both
// speak. v3+ checks the client software name and version against Kafka's
// pattern (INVALID_REQUEST otherwise). The only feature advertised is
// transaction.version (supported 0-2, finalized at Config.TransactionVersion)
// when that is 2: KIP-890 part 2 (end_txn.go, produce.go,
// txn_offset_commit.go); otherwise none. v5 (KIP-1242): a client naming another
// cluster gets REBOOTSTRAP_REQUIRED, naming only one of cluster and node is
// INVALID_REQUEST. Unlike Kafka, a client that reached another node than
// the one it named is served: every agent serves every request, so a
// connection "misrouted" by a load balancer or port mapping is harmless.

import (
	"context"
	"regexp"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	register(kmsg.ApiVersions, 0, 5, (*Server).handleApiVersions, public[*kmsg.ApiVersionsRequest]())
}

var softwareNameRE = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$`)

func (s *Server) handleApiVersions(_ context.Context, _ *reqCtx, req *kmsg.ApiVersionsRequest) (reply, error) {
	resp := apiVersionsResponse(req.Version)
	if req.Version >= 3 && (!softwareNameRE.MatchString(req.ClientSoftwareName) || !softwareNameRE.MatchString(req.ClientSoftwareVersion)) {
		resp.ErrorCode = kerr.InvalidRequest.Code
	}
	if req.Version >= 3 && s.cfg.TransactionVersion >= 2 {
		sf := kmsg.NewApiVersionsResponseSupportedFeature()
		sf.Name, sf.MinVersion, sf.MaxVersion = "transaction.version", 0, 2
		resp.SupportedFeatures = append(resp.SupportedFeatures, sf)
		ff := kmsg.NewApiVersionsResponseFinalizedFeature()
		ff.Name, ff.MinVersionLevel, ff.MaxVersionLevel = "transaction.version", 2, 2
		resp.FinalizedFeatures, resp.FinalizedFeaturesEpoch = append(resp.FinalizedFeatures, ff), 1
	}
	if req.Version >= 5 && resp.ErrorCode == 0 {
		hasCluster, hasNode := req.ClusterID != nil, req.NodeID != -1
		switch {
		case hasCluster != hasNode:
			resp.ErrorCode = kerr.InvalidRequest.Code
		case hasCluster && *req.ClusterID != s.cfg.ClusterID:
			resp.ErrorCode = kerr.RebootstrapRequired.Code
		}
	}
	return now(resp)
}

// apiVersionsResponse lists every registered API at the given response
// version.
func apiVersionsResponse(version int16) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = version
	for _, a := range sortedAPIs() {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = a.key, a.minVersion, a.maxVersion
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	return resp
}
