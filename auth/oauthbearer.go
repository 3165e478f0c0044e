package auth

// SASL/OAUTHBEARER (RFC 7628, KIP-255) with Kafka's default validator: the
// unsecured JWS of OAuthBearerUnsecuredValidatorCallbackHandler. A token is
// "<header>.<claims>." (base64url, no padding): the header's alg is
// "none", the signature empty, the claims a JSON object with a non-empty
// "sub" (the principal) and an "exp" (seconds since the epoch) still in
// the future; an "iat", when present, is not in the future and precedes
// "exp". Nothing proves who made the token: whoever reaches the listener
// may log in as anyone. Kafka documents that handler as unsuitable for
// production, and so does shale's flag that turns it on.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// OAuthBearer is the SASL mechanism name.
const OAuthBearer = "OAUTHBEARER"

// MaxOAuthBearerBytes bounds an OAUTHBEARER client message: tokens are
// larger than SCRAM messages.
const MaxOAuthBearerBytes = 64 << 10

// ErrInvalidToken is a token the validator refuses; the server answers it
// with OAuthBearerInvalidToken, as RFC 7628 section 3.2.2 says.
var ErrInvalidToken = errors.New("auth: invalid OAUTHBEARER token")

// OAuthBearerInvalidToken is the server's error challenge for a refused
// token (RFC 7628's JSON error, Kafka's words). The client answers it with
// a lone 0x01 and the server then fails the authentication.
const OAuthBearerInvalidToken = `{"status":"invalid_token"}`

// OAuthBearerInitial is a parsed OAUTHBEARER client initial response.
type OAuthBearerInitial struct {
	AuthzID    string            // "a=" of the GS2 header; "" when absent
	Token      string            // the bearer token
	Extensions map[string]string // SASL extensions (KIP-342); unused by the validator
}

// ParseOAuthBearerInitial parses an OAUTHBEARER client initial response:
// the GS2 header "n,[a=<authzid>]," then 0x01-separated key=value pairs,
// one of them "auth=Bearer <token>", ended by 0x01 0x01. It wraps
// ErrMalformed for anything else.
func ParseOAuthBearerInitial(msg []byte) (OAuthBearerInitial, error) {
	var out OAuthBearerInitial
	bad := func(why string) (OAuthBearerInitial, error) {
		return OAuthBearerInitial{}, fmt.Errorf("%w: OAUTHBEARER initial response: %s", ErrMalformed, why)
	}
	if len(msg) > MaxOAuthBearerBytes {
		return bad(fmt.Sprintf("%d bytes, at most %d", len(msg), MaxOAuthBearerBytes))
	}
	s := string(msg)
	gs2, rest, ok := strings.Cut(s, ",")
	if !ok || (gs2 != "n" && gs2 != "y") {
		return bad("GS2 header must start with n, (channel binding is not supported)")
	}
	authz, rest, ok := strings.Cut(rest, ",")
	if !ok {
		return bad("GS2 header has no second comma")
	}
	if authz != "" {
		id, ok := strings.CutPrefix(authz, "a=")
		if !ok || id == "" {
			return bad("GS2 authorization identity must be a=<id>")
		}
		out.AuthzID = id
	}
	body, ok := strings.CutPrefix(rest, "\x01")
	if !ok {
		return bad("no 0x01 after the GS2 header")
	}
	body, ok = strings.CutSuffix(body, "\x01\x01")
	if !ok {
		return bad("not ended by 0x01 0x01")
	}
	for _, kv := range strings.Split(body, "\x01") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return bad("a key=value pair is malformed")
		}
		if k == "auth" {
			if out.Token != "" {
				return bad("auth given twice")
			}
			tok, ok := strings.CutPrefix(v, "Bearer ")
			if !ok || tok == "" {
				return bad(`auth must be "Bearer <token>"`)
			}
			out.Token = tok
			continue
		}
		if out.Extensions == nil {
			out.Extensions = map[string]string{}
		}
		out.Extensions[k] = v
	}
	if out.Token == "" {
		return bad("no auth=Bearer <token>")
	}
	return out, nil
}

// ValidateUnsecuredJWS checks token as Kafka's default OAUTHBEARER
// validator does at time now and returns its principal (the "sub" claim).
// Every refusal wraps ErrInvalidToken.
func ValidateUnsecuredJWS(token string, now time.Time) (string, error) {
	bad := func(format string, a ...any) (string, error) {
		return "", fmt.Errorf("%w: %s", ErrInvalidToken, fmt.Sprintf(format, a...))
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return bad("a JWS has 3 dot-separated parts, this one %d", len(parts))
	}
	if parts[2] != "" {
		return bad("an unsecured JWS has an empty signature")
	}
	var header map[string]any
	if err := decodeJWSPart(parts[0], &header); err != nil {
		return bad("header: %v", err)
	}
	if alg, _ := header["alg"].(string); alg != "none" {
		return bad(`header alg %v, want "none"`, header["alg"])
	}
	var claims map[string]any
	if err := decodeJWSPart(parts[1], &claims); err != nil {
		return bad("claims: %v", err)
	}
	sub, _ := claims["sub"].(string)
	if strings.TrimSpace(sub) == "" {
		return bad(`claim "sub" (the principal) missing or empty`)
	}
	exp, ok := claims["exp"].(float64)
	if !ok {
		return bad(`claim "exp" missing or not a number`)
	}
	nowSec := float64(now.UnixMilli()) / 1000
	if exp <= nowSec {
		return bad("expired at %s", secondsTime(exp))
	}
	if v, present := claims["iat"]; present {
		iat, ok := v.(float64)
		if !ok {
			return bad(`claim "iat" not a number`)
		}
		if iat > nowSec {
			return bad("issued in the future (%s)", secondsTime(iat))
		}
		if exp <= iat {
			return bad("expires (%s) before it is issued (%s)", secondsTime(exp), secondsTime(iat))
		}
	}
	return sub, nil
}

// decodeJWSPart decodes one base64url (unpadded) JSON object.
func decodeJWSPart(s string, into *map[string]any) error {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("not base64url: %v", err)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	if err := d.Decode(into); err != nil || *into == nil {
		return fmt.Errorf("not a JSON object: %v", err)
	}
	if d.More() {
		return errors.New("data after the JSON object")
	}
	return nil
}

func secondsTime(s float64) string {
	if math.IsNaN(s) || math.Abs(s) > 1e11 {
		return fmt.Sprint(s)
	}
	return time.UnixMilli(int64(s * 1000)).UTC().Format(time.RFC3339)
}
