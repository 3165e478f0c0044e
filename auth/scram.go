package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// SCRAM mechanisms, by their SASL names.
const (
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	Plain       = "PLAIN"
)

// Iteration bounds, as Kafka's (4096 is also its minimum).
const (
	MinIterations     = 4096
	MaxIterations     = 16384
	DefaultIterations = 8192
	// MaxMessageBytes bounds a SASL message (a SCRAM message, a PLAIN
	// token); longer ones fail without being parsed.
	MaxMessageBytes = 4096
	// MaxUserBytes bounds a user name.
	MaxUserBytes = 256
	saltBytes    = 32
	nonceBytes   = 24
)

var (
	// ErrAuthFailed is every failed login, whatever the reason.
	ErrAuthFailed = errors.New("auth: authentication failed")
	// ErrMalformed wraps a message that does not parse.
	ErrMalformed = errors.New("auth: malformed message")
	// ErrUnknownMechanism is a mechanism shale does not support.
	ErrUnknownMechanism = errors.New("auth: unsupported mechanism")
)

// Credential is what is stored for one user and mechanism: never the
// password, only what a SCRAM server needs.
type Credential struct {
	Mechanism  string `json:"mechanism"`
	Iterations int    `json:"iterations"`
	Salt       []byte `json:"salt"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// KafkaMechanism maps Kafka's ScramMechanism numbers (1: SHA-256, 2:
// SHA-512) to SASL names, "" when unknown.
func KafkaMechanism(m int8) string {
	switch m {
	case 1:
		return ScramSHA256
	case 2:
		return ScramSHA512
	}
	return ""
}

// KafkaMechanismNumber is the inverse of KafkaMechanism (0 when unknown).
func KafkaMechanismNumber(name string) int8 {
	switch name {
	case ScramSHA256:
		return 1
	case ScramSHA512:
		return 2
	}
	return 0
}

func hashFor(mech string) (func() hash.Hash, error) {
	switch mech {
	case ScramSHA256:
		return sha256.New, nil
	case ScramSHA512:
		return sha512.New, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownMechanism, mech)
}

// SaltedPassword is Hi(password, salt, iterations) of RFC 5802.
func SaltedPassword(mech, password string, salt []byte, iterations int) ([]byte, error) {
	h, err := hashFor(mech)
	if err != nil {
		return nil, err
	}
	return pbkdf2.Key(h, password, salt, iterations, h().Size())
}

// NewCredential derives a credential from a password with a random salt.
func NewCredential(mech, password string, iterations int) (Credential, error) {
	salt := make([]byte, saltBytes)
	rand.Read(salt)
	sp, err := SaltedPassword(mech, password, salt, iterations)
	if err != nil {
		return Credential{}, err
	}
	return CredentialFromSalted(mech, sp, salt, iterations)
}

// CredentialFromSalted derives a credential from a salted password (what
// AlterUserScramCredentials carries). The salted password may be of any
// non-empty length, as Kafka accepts (a client computing it with the
// mechanism's hash gives one of the hash's size).
func CredentialFromSalted(mech string, salted, salt []byte, iterations int) (Credential, error) {
	h, err := hashFor(mech)
	if err != nil {
		return Credential{}, err
	}
	if iterations < MinIterations || iterations > MaxIterations {
		return Credential{}, fmt.Errorf("auth: iterations %d not in %d..%d", iterations, MinIterations, MaxIterations)
	}
	// Like Kafka, any non-empty salted password is accepted: it is only
	// ever used as an HMAC key, whatever its length.
	if len(salt) == 0 || len(salted) == 0 {
		return Credential{}, fmt.Errorf("auth: empty salt (%d bytes) or salted password (%d bytes)", len(salt), len(salted))
	}
	ck := hmacSum(h, salted, []byte("Client Key"))
	sum := h()
	sum.Write(ck)
	return Credential{
		Mechanism:  mech,
		Iterations: iterations,
		Salt:       append([]byte(nil), salt...),
		StoredKey:  sum.Sum(nil),
		ServerKey:  hmacSum(h, salted, []byte("Server Key")),
	}, nil
}

// Validate checks a stored credential's shape.
func (c Credential) Validate() error {
	h, err := hashFor(c.Mechanism)
	if err != nil {
		return err
	}
	n := h().Size()
	if c.Iterations < MinIterations || c.Iterations > MaxIterations || len(c.Salt) == 0 || len(c.StoredKey) != n || len(c.ServerKey) != n {
		return errors.New("auth: credential has a bad shape")
	}
	return nil
}

func hmacSum(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// Faker makes stable fake credentials for unknown users, from a secret
// drawn once per process, so probing names learns nothing.
type Faker struct{ secret [32]byte }

// NewFaker returns a Faker with a random secret.
func NewFaker() *Faker {
	f := &Faker{}
	rand.Read(f.secret[:])
	return f
}

// Credential returns a fake credential for user: the same salt every time
// (as a real user's), keys no password matches.
func (f *Faker) Credential(mech, user string) Credential {
	h, err := hashFor(mech)
	if err != nil {
		h = sha256.New
	}
	seed := hmacSum(sha256.New, f.secret[:], []byte(mech+"\x00"+user))
	return Credential{
		Mechanism:  mech,
		Iterations: DefaultIterations,
		Salt:       seed[:saltBytes],
		StoredKey:  hmacSum(h, seed, []byte("stored")),
		ServerKey:  hmacSum(h, seed, []byte("server")),
	}
}

// VerifyPassword checks a password against a SCRAM credential by deriving
// its StoredKey, in constant time for a given credential shape.
func VerifyPassword(c Credential, password string) bool {
	sp, err := SaltedPassword(c.Mechanism, password, c.Salt, c.Iterations)
	if err != nil {
		return false
	}
	d, err := CredentialFromSalted(c.Mechanism, sp, c.Salt, c.Iterations)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(d.StoredKey, c.StoredKey) == 1
}

// ParsePlain splits a SASL/PLAIN token (RFC 4616): [authzid] NUL authcid
// NUL passwd. A non-empty authzid must equal authcid.
func ParsePlain(tok []byte) (user, pass string, err error) {
	if len(tok) > MaxMessageBytes {
		return "", "", fmt.Errorf("%w: PLAIN token of %d bytes", ErrMalformed, len(tok))
	}
	parts := strings.Split(string(tok), "\x00")
	if len(parts) != 3 || parts[1] == "" || len(parts[1]) > MaxUserBytes {
		return "", "", fmt.Errorf("%w: PLAIN token", ErrMalformed)
	}
	if parts[0] != "" && parts[0] != parts[1] {
		return "", "", fmt.Errorf("%w: PLAIN authzid differs from user", ErrMalformed)
	}
	return parts[1], parts[2], nil
}

// ClientFirst is a parsed client-first-message.
type ClientFirst struct {
	User  string // unescaped
	Nonce string
	Bare  string // client-first-message-bare, for the AuthMessage
	GS2   string // gs2-header, echoed base64 in the client-final channel binding
}

// ParseClientFirst parses "n,[a=authzid],n=user,r=nonce[,ext...]". Channel
// binding ("p=") is refused; "y" and "n" are accepted (TLS is terminated
// here but Kafka clients do not bind).
func ParseClientFirst(msg []byte) (ClientFirst, error) {
	var cf ClientFirst
	if len(msg) > MaxMessageBytes {
		return cf, fmt.Errorf("%w: client-first of %d bytes", ErrMalformed, len(msg))
	}
	s := string(msg)
	// gs2-header: cbind-flag "," [authzid] ","
	i := strings.IndexByte(s, ',')
	if i < 0 {
		return cf, fmt.Errorf("%w: no gs2 header", ErrMalformed)
	}
	switch s[:i] {
	case "n", "y":
	default:
		return cf, fmt.Errorf("%w: channel binding not supported", ErrMalformed)
	}
	j := strings.IndexByte(s[i+1:], ',')
	if j < 0 {
		return cf, fmt.Errorf("%w: no gs2 header", ErrMalformed)
	}
	authz := s[i+1 : i+1+j]
	cf.GS2 = s[:i+1+j+1]
	cf.Bare = s[i+1+j+1:]
	attrs := strings.Split(cf.Bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return cf, fmt.Errorf("%w: client-first attributes", ErrMalformed)
	}
	user, err := unescapeName(attrs[0][2:])
	if err != nil {
		return cf, err
	}
	if user == "" || len(user) > MaxUserBytes {
		return cf, fmt.Errorf("%w: user name length", ErrMalformed)
	}
	if authz != "" {
		a, err := unescapeName(strings.TrimPrefix(authz, "a="))
		if err != nil || !strings.HasPrefix(authz, "a=") || a != user {
			return cf, fmt.Errorf("%w: authzid differs from user", ErrMalformed)
		}
	}
	cf.User = user
	cf.Nonce = attrs[1][2:]
	if cf.Nonce == "" || !printable(cf.Nonce) {
		return cf, fmt.Errorf("%w: client nonce", ErrMalformed)
	}
	for _, ext := range attrs[2:] {
		// Kafka's only extension is tokenauth (delegation tokens), which
		// shale does not have.
		if strings.HasPrefix(ext, "tokenauth=") && ext != "tokenauth=false" {
			return cf, fmt.Errorf("%w: delegation tokens not supported", ErrMalformed)
		}
	}
	return cf, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ',' {
			return false
		}
	}
	return true
}

// unescapeName undoes saslname escaping (=2C for ",", =3D for "=").
func unescapeName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 > len(s) {
			return "", fmt.Errorf("%w: bad escape in user name", ErrMalformed)
		}
		switch s[i+1 : i+3] {
		case "2C":
			b.WriteByte(',')
		case "3D":
			b.WriteByte('=')
		default:
			return "", fmt.Errorf("%w: bad escape in user name", ErrMalformed)
		}
		i += 2
	}
	return b.String(), nil
}

// ScramServer is the server side of one SCRAM conversation: Start with the
// client-first message, then Finish with the client-final message.
type ScramServer struct {
	mech  string
	h     func() hash.Hash
	cred  Credential
	first ClientFirst
	nonce string // client nonce + server nonce
	sfm   string // server-first-message
	step  int
}

// NewScramServer starts a conversation for mech (ScramSHA256 or ScramSHA512).
func NewScramServer(mech string) (*ScramServer, error) {
	h, err := hashFor(mech)
	if err != nil {
		return nil, err
	}
	return &ScramServer{mech: mech, h: h}, nil
}

// Mechanism returns the conversation's mechanism.
func (s *ScramServer) Mechanism() string { return s.mech }

// User returns the user named in client-first ("" before Start).
func (s *ScramServer) User() string { return s.first.User }

// Start answers a parsed client-first message with the server-first
// message, using cred (the user's, or a fake one for an unknown user).
func (s *ScramServer) Start(cf ClientFirst, cred Credential) ([]byte, error) {
	if s.step != 0 {
		return nil, fmt.Errorf("%w: client-first sent twice", ErrMalformed)
	}
	if cred.Mechanism != s.mech {
		return nil, fmt.Errorf("auth: credential for %s used with %s", cred.Mechanism, s.mech)
	}
	s.step = 1
	s.first, s.cred = cf, cred
	nb := make([]byte, nonceBytes)
	rand.Read(nb)
	s.nonce = cf.Nonce + base64.RawStdEncoding.EncodeToString(nb)
	s.sfm = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(cred.Salt) + ",i=" + strconv.Itoa(cred.Iterations)
	return []byte(s.sfm), nil
}

// Finish checks the client-final message ("c=...,r=...,p=...") and returns
// the server-final message ("v=..."). Any mismatch is ErrAuthFailed
// (malformed input ErrMalformed); both end the conversation.
func (s *ScramServer) Finish(msg []byte) ([]byte, error) {
	if s.step != 1 {
		return nil, fmt.Errorf("%w: client-final out of order", ErrMalformed)
	}
	s.step = 2
	if len(msg) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: client-final of %d bytes", ErrMalformed, len(msg))
	}
	m := string(msg)
	pi := strings.LastIndex(m, ",p=")
	if pi < 0 {
		return nil, fmt.Errorf("%w: no proof", ErrMalformed)
	}
	without := m[:pi]
	proof, err := base64.StdEncoding.DecodeString(m[pi+3:])
	if err != nil {
		return nil, fmt.Errorf("%w: proof is not base64", ErrMalformed)
	}
	attrs := strings.Split(without, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, fmt.Errorf("%w: client-final attributes", ErrMalformed)
	}
	cb, err := base64.StdEncoding.DecodeString(attrs[0][2:])
	if err != nil {
		return nil, fmt.Errorf("%w: channel binding is not base64", ErrMalformed)
	}
	// Every check below runs whatever the earlier ones found, so the time
	// taken does not tell which failed.
	ok := subtle.ConstantTimeCompare(cb, []byte(s.first.GS2))
	// The nonce must be the server's (client + server nonce). librdkafka
	// before 2.6.1 sends the client nonce once more in front of it, which
	// Apache Kafka accepts since CVE-2024-56128's fix; so do we, and
	// nothing else.
	r := []byte(attrs[1][2:])
	ok &= subtle.ConstantTimeCompare(r, []byte(s.nonce)) | subtle.ConstantTimeCompare(r, []byte(s.first.Nonce+s.nonce))
	authMsg := s.first.Bare + "," + s.sfm + "," + without
	sig := hmacSum(s.h, s.cred.StoredKey, []byte(authMsg))
	if len(proof) != len(sig) {
		proof = make([]byte, len(sig))
		ok = 0
	}
	clientKey := make([]byte, len(sig))
	for i := range sig {
		clientKey[i] = proof[i] ^ sig[i]
	}
	sum := s.h()
	sum.Write(clientKey)
	ok &= subtle.ConstantTimeCompare(sum.Sum(nil), s.cred.StoredKey)
	if ok != 1 {
		return nil, ErrAuthFailed
	}
	v := hmacSum(s.h, s.cred.ServerKey, []byte(authMsg))
	return []byte("v=" + base64.StdEncoding.EncodeToString(v)), nil
}
