package token

import (
	"context"
	"testing"
	"time"
)

// BenchmarkCacheTokenWarm measures the hot path every new connection takes: a cached
// token before its refresh point, from many goroutines at once.
func BenchmarkCacheTokenWarm(b *testing.B) {
	c := NewCache(newFakeCred(&fakeClock{now: time.Now()}), ScopePublic)
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Token(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Token(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
