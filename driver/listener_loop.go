// This file is adapted from github.com/lib/pq v1.12.3, notify.go
// (Listener.listenerConnLoop): pq's reconnect loop, changed to log in with a
// token from pgentra's cache on every (re)connect and to stop its waits when
// Close is called.
//
// Copyright (c) 2011-2013, 'pq' Contributors. Portions Copyright (c) 2011
// Blake Mizerany. Used under the MIT License; its full text is in the
// LICENSE file at the root of this repository.

package driver

import (
	"time"

	"github.com/lib/pq"
)

// listenerConnLoop is pq's reconnect loop: connect (backing off from
// minReconnectInterval to maxReconnectInterval while attempts fail), relay
// notifications, and after a loss wait out the rest of minReconnectInterval
// since the last successful connect. Unlike pq, its waits and sends end when
// Close is called.
func (l *Listener) listenerConnLoop() {
	var (
		nextReconnect     time.Time
		reconnectInterval = l.minReconnectInterval
	)
	for {
		for {
			err := l.connect()
			if err == nil {
				break
			}
			if l.closed() {
				return
			}
			l.noteFirstFailure(err)
			l.emitEvent(pq.ListenerEventConnectionAttemptFailed, err)
			if !l.sleep(reconnectInterval) {
				return
			}
			reconnectInterval *= 2
			if reconnectInterval > l.maxReconnectInterval {
				reconnectInterval = l.maxReconnectInterval
			}
		}

		if nextReconnect.IsZero() {
			l.emitEvent(pq.ListenerEventConnected, nil)
		} else {
			l.emitEvent(pq.ListenerEventReconnected, nil)
			l.send(nil)
		}

		reconnectInterval = l.minReconnectInterval
		nextReconnect = time.Now().Add(reconnectInterval)

		for n := range l.connNotificationChan {
			l.send(n)
		}

		err := l.disconnectCleanup()
		if l.closed() {
			return
		}
		l.emitEvent(pq.ListenerEventDisconnected, err)
		if !l.sleep(time.Until(nextReconnect)) {
			return
		}
	}
}
