package agent

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sort"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// api is one served Kafka API: its key, the versions served, the handler
// and the permission it needs (acl_enforce.go). Each API file registers its
// entry once, in an init function; the table is never modified afterwards.
// ApiVersions is built from it, so what is advertised and what is handled
// cannot drift apart.
type api struct {
	key        int16
	minVersion int16
	maxVersion int16
	handle     func(s *Server, ctx context.Context, rc *reqCtx, req kmsg.Request) (reply, error)
	perm       apiPerm
}

// apiPerm is a registered API's permission, its request type erased.
type apiPerm struct {
	needs     []need
	public    bool
	authorize func(g *gate, req kmsg.Request, run func() (reply, error)) (reply, error)
}

var apis = map[int16]api{}

// register adds an API to the table with the permission it needs. A key
// registered twice, a version range kmsg cannot encode, or a permission not
// built by acl_enforce.go's constructors panics at start-up.
func register[R kmsg.Request](key kmsg.Key, minVersion, maxVersion int16, h func(s *Server, ctx context.Context, rc *reqCtx, req R) (reply, error), p permission[R]) {
	k := key.Int16()
	if _, dup := apis[k]; dup {
		panic(fmt.Sprintf("agent: API %s registered twice", key.Name()))
	}
	probe := kmsg.RequestForKey(k)
	if probe == nil || minVersion < 0 || minVersion > maxVersion || maxVersion > probe.MaxVersion() {
		panic(fmt.Sprintf("agent: API %s: bad version range %d..%d", key.Name(), minVersion, maxVersion))
	}
	if _, ok := probe.(R); !ok {
		panic(fmt.Sprintf("agent: API %s: handler takes %T", key.Name(), *new(R)))
	}
	if p.enforce == nil || (len(p.needs) == 0) != p.public {
		panic(fmt.Sprintf("agent: API %s registered without a permission", key.Name()))
	}
	apis[k] = api{key: k, minVersion: minVersion, maxVersion: maxVersion,
		handle: func(s *Server, ctx context.Context, rc *reqCtx, req kmsg.Request) (reply, error) {
			return h(s, ctx, rc, req.(R))
		},
		perm: apiPerm{needs: p.needs, public: p.public,
			authorize: func(g *gate, req kmsg.Request, run func() (reply, error)) (reply, error) {
				return p.enforce(g, req.(R), run)
			}},
	}
}

// sortedAPIs returns the registry ordered by key.
func sortedAPIs() []api {
	out := make([]api, 0, len(apis))
	for _, a := range apis {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// reqCtx describes the request being handled.
type reqCtx struct {
	conn     *conn
	key      int16
	version  int16
	corr     int32
	clientID string
	// noAutoCreate: the principal may not create topics (acl_enforce.go).
	noAutoCreate bool
}

// reply is a handler's answer: a response now, a function that produces it
// later (off the read loop, still written in request order), or nothing.
type reply struct {
	resp       kmsg.Response
	wait       func(ctx context.Context) (kmsg.Response, error)
	noResponse bool
	// written, when set, runs once the answer is on the socket (after
	// wait returned).
	written func()
}

func now(resp kmsg.Response) (reply, error) { return reply{resp: resp}, nil }

// connOf is the request's connection (nil for requests not read from one).
func (rc *reqCtx) connOf() *conn {
	if rc == nil {
		return nil
	}
	return rc.conn
}

// decode parses a request frame. It returns either the request to dispatch,
// or an answer to send without dispatching (ApiVersions at a version we do
// not serve), or an error meaning "close the connection" (a header or body
// kmsg cannot decode, an API key kmsg does not know).
func (s *Server) decode(body []byte) (kmsg.Request, *reqCtx, kmsg.Response, error) {
	r := kbin.Reader{Src: body}
	rc := &reqCtx{key: r.Int16(), version: r.Int16(), corr: r.Int32()}
	if cid := r.NullableString(); cid != nil {
		rc.clientID = *cid
	}
	if !r.Ok() {
		return nil, nil, nil, fmt.Errorf("malformed request header")
	}
	if rc.key == kmsg.ApiVersions.Int16() {
		if a := apis[rc.key]; rc.version < a.minVersion || rc.version > a.maxVersion {
			// Kafka answers an ApiVersions it cannot parse in the v0 format
			// with UNSUPPORTED_VERSION and the versions it does serve, so
			// the client can retry at a version both speak.
			resp := apiVersionsResponse(0)
			resp.ErrorCode = kerr.UnsupportedVersion.Code
			return nil, rc, resp, nil
		}
	}
	req := kmsg.RequestForKey(rc.key)
	if req == nil {
		return nil, nil, nil, fmt.Errorf("unknown API key %d", rc.key)
	}
	if rc.version < 0 || rc.version > req.MaxVersion() {
		return nil, nil, nil, fmt.Errorf("%s version %d is unknown", kmsg.NameForKey(rc.key), rc.version)
	}
	req.SetVersion(rc.version)
	if req.IsFlexible() {
		kmsg.SkipTags(&r)
		if !r.Ok() {
			return nil, nil, nil, fmt.Errorf("malformed flexible request header")
		}
	}
	if err := req.ReadFrom(r.Src); err != nil {
		return nil, nil, nil, fmt.Errorf("decode %s v%d: %w", kmsg.NameForKey(rc.key), rc.version, err)
	}
	return req, rc, nil, nil
}

// dispatch runs the handler registered for the request. A key or version we
// do not serve is answered with UNSUPPORTED_VERSION when the response has a
// top-level error code at that version; otherwise the connection is closed
// (as Kafka does: clients only send what ApiVersions advertised).
func (s *Server) dispatch(ctx context.Context, rc *reqCtx, req kmsg.Request) (reply, error) {
	a, ok := apis[rc.key]
	if ok && rc.version >= a.minVersion && rc.version <= a.maxVersion {
		if rc.key != kmsg.Produce.Int16() && rc.key != kmsg.Fetch.Int16() {
			// Produce and Fetch bound their own waits.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, requestTimeout)
			defer cancel()
		}
		return s.authorizedHandle(ctx, rc, req, a)
	}
	if resp := unsupportedResponse(req); resp != nil {
		s.log.Debug("unsupported request answered", "api", kmsg.NameForKey(rc.key), "version", rc.version)
		return now(resp)
	}
	return reply{}, fmt.Errorf("%s version %d is not served", kmsg.NameForKey(rc.key), rc.version)
}

// unsupportedResponse returns an empty response to req carrying
// UNSUPPORTED_VERSION in its top-level ErrorCode field, or nil when the
// response has no such field at req's version (an answer without an error
// would look like success).
func unsupportedResponse(req kmsg.Request) kmsg.Response {
	resp := req.ResponseKind()
	v := reflect.ValueOf(resp)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	f := v.Elem().FieldByName("ErrorCode")
	if !f.IsValid() || f.Kind() != reflect.Int16 || !f.CanSet() {
		return nil
	}
	// The field exists in every version of the Go type; it is on the wire
	// only if setting it changes the encoding.
	f.SetInt(0)
	without := resp.AppendTo(nil)
	f.SetInt(int64(kerr.UnsupportedVersion.Code))
	if bytes.Equal(without, resp.AppendTo(nil)) {
		return nil
	}
	return resp
}
