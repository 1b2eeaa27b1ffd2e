package leanauth

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leanauth/leanauth/clients/go/internal/nng"
	"github.com/leanauth/leanauth/clients/go/leanauthpb"
	"google.golang.org/protobuf/proto"
)

// fakeServer is a REP socket standing in for leanauthd in unit tests: n
// contexts, each passing requests to handle and sending back what it
// returns (nil: no reply).
type fakeServer struct {
	url      string
	sock     *nng.Socket
	requests atomic.Int64
	wg       sync.WaitGroup
	stop     context.CancelFunc
}

type handler func(req *leanauthpb.RpcRequest) *leanauthpb.RpcResponse

func startFake(t *testing.T, n int, handle handler) *fakeServer {
	t.Helper()
	s, err := nng.Open(nng.Rep)
	if err != nil {
		t.Fatal(err)
	}
	url, err := s.Listen("tcp://127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	f := &fakeServer{url: url, sock: s, stop: stop}
	for i := 0; i < n; i++ {
		c, err := s.OpenCtx()
		if err != nil {
			t.Fatal(err)
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			for {
				b, err := c.Recv(ctx, -1)
				if err != nil {
					return
				}
				f.requests.Add(1)
				var req leanauthpb.RpcRequest
				var resp *leanauthpb.RpcResponse
				if err := proto.Unmarshal(b, &req); err != nil {
					resp = &leanauthpb.RpcResponse{Status: &leanauthpb.Status{
						Code: int32(InvalidArgument), Message: "malformed"}}
				} else {
					resp = handle(&req)
				}
				if resp == nil {
					continue // no reply; REP drops the request on the next recv
				}
				out, _ := proto.Marshal(resp)
				if err := c.Send(ctx, out, 5*time.Second); err != nil {
					return
				}
			}
		}()
	}
	t.Cleanup(f.close)
	return f
}

func (f *fakeServer) close() {
	f.sock.Close()
	f.wg.Wait()
	f.stop()
}

// okReply encodes m as an OK reply.
func okReply(m proto.Message) *leanauthpb.RpcResponse {
	b, _ := proto.Marshal(m)
	return &leanauthpb.RpcResponse{Status: &leanauthpb.Status{}, Payload: b}
}

func errReply(code Code, msg string) *leanauthpb.RpcResponse {
	return &leanauthpb.RpcResponse{Status: &leanauthpb.Status{Code: int32(code), Message: msg}}
}

func dialFake(t *testing.T, f *fakeServer, opts ...Option) *Client {
	t.Helper()
	c, err := Dial(f.url, append([]Option{WithConnectTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
