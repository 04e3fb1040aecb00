package daemon

import (
	"fmt"
	"sync"
	"time"

	"github.com/corral-pm/corral/internal/api"
)

// eventBus fans process events out to the clients of GET /v1/events. A slow client misses
// events, and is told how many.
type eventBus struct {
	mu   sync.Mutex
	subs map[*eventSub]struct{}
}

type eventSub struct {
	c       chan api.Event
	dropped int
}

func newEventBus() *eventBus { return &eventBus{subs: map[*eventSub]struct{}{}} }

func (b *eventBus) subscribe() *eventSub {
	s := &eventSub{c: make(chan api.Event, 256)}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

func (b *eventBus) unsubscribe(s *eventSub) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

func (b *eventBus) publish(ev api.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if s.dropped > 0 {
			select {
			case s.c <- api.Event{Time: time.Now(), ID: -1, Kind: api.EventDropped, Message: fmt.Sprintf("%d events skipped: this reader fell behind", s.dropped)}:
				s.dropped = 0
			default:
				s.dropped++
				continue
			}
		}
		select {
		case s.c <- ev:
		default:
			s.dropped++
		}
	}
}
