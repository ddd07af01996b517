// SPDX-License-Identifier: LGPL-2.1-or-later

// 600: goroutines (on many OS threads) calling into one context at once,
// each seeing its own errors.

package vstor

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func Test600ThreadsOneContext(t *testing.T) {
	e := newVolEnv(t)
	c := newCtx(t, e)
	shared := openVol(t, c, e.Image)
	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			runtime.LockOSThread() // spread the goroutines over threads
			defer runtime.UnlockOSThread()
			for i := 0; i < rounds; i++ {
				switch (w + i) % 4 {
				case 0: // own handle on the same volume
					v, err := c.Open(e.Image, 0)
					if err != nil {
						errs <- err
						continue
					}
					if n, err := v.Size(); err != nil || n != imageSize {
						errs <- err
					}
					v.Close()
				case 1: // the shared handle
					if _, err := shared.Layers(); err != nil {
						errs <- err
					}
					if ok, why, err := shared.Can(OpSnapshot, 0); !ok || err != nil {
						errs <- errors.New("can snapshot: " + why)
					}
				case 2: // an error in this thread must stay this thread's
					_, err := c.Open(e.path("missing-"+itoaTest(w)), 0)
					var x *Error
					if !errors.As(err, &x) || x.Code != CodeNoEnt ||
						!strings.Contains(x.Msg, "missing-"+itoaTest(w)) {
						errs <- errors.New("wrong error in thread: " + errString(err))
					}
				case 3: // a plan while others read
					if _, err := shared.ExtendTo("+1G", &ExtendOptions{DryRun: true}); err != nil &&
						!errors.Is(err, ErrBusy) {
						errs <- err
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, _ := shared.Size(); n != imageSize {
		t.Fatalf("size %d", n)
	}
}

func Test600CloseWhileCalling(t *testing.T) {
	// Closing the context while goroutines use its volumes: every call
	// either succeeds or returns STATE; nothing crashes.
	e := newVolEnv(t)
	for round := 0; round < 5; round++ {
		c, err := NewContext(&Options{StateDir: e.StateDir})
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.Open(e.Image, 0)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					if _, err := v.Size(); err != nil {
						if !errors.Is(err, ErrState) {
							t.Error(err)
						}
						return
					}
				}
			}()
		}
		c.Close()
		wg.Wait()
	}
}

func itoaTest(i int) string { return string(rune('a' + i)) }

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
