package auth

import (
	"bytes"
	"testing"
	"time"
)

// FuzzOpen feeds arbitrary frames to Open. It must never panic, must
// report a Reason for every rejection, must create no table entry for a
// rejected frame, and may accept only a frame that was really sealed with
// the key (the seeds), each at most once.
func FuzzOpen(f *testing.F) {
	r := newRig(f, VerifierOptions{})
	var sealed [][]byte
	for _, mac := range [][6]byte{srcMAC, {2, 0, 0, 0, 0, 0x0b}} {
		s := r.seal(f, arpFrame(mac))
		sealed = append(sealed, s)
		f.Add(s)
		f.Add(s[:len(s)-1])
		f.Add(append(bytes.Clone(s), 0))
		t := bytes.Clone(s)
		t[len(t)-1] ^= 1
		f.Add(t)
	}
	f.Add([]byte{})
	f.Add([]byte("FLAU"))
	f.Add(append(make([]byte, 20), 'F', 'L', 'A', 'U', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1))
	f.Add(append(arpFrame(srcMAC)[:42], make([]byte, 18)...))
	clk := r.clk.Now()

	f.Fuzz(func(t *testing.T, frame []byte) {
		k := r.key
		v := NewVerifier(ring(t, k), VerifierOptions{Now: func() time.Time { return clk }})
		in := bytes.Clone(frame)
		for round := 0; round < 2; round++ {
			payload, info, err := v.Open(frame, sender(frame))
			if !bytes.Equal(frame, in) {
				t.Fatal("Open modified its input")
			}
			if err != nil {
				if ReasonOf(err) == "" {
					t.Fatalf("error without a reason: %v", err)
				}
				if round == 0 && v.Stats().Senders != 0 {
					t.Fatal("a rejected frame created a table entry")
				}
				continue
			}
			if round == 1 {
				t.Fatal("the same frame was accepted twice")
			}
			known := false
			for _, s := range sealed {
				known = known || bytes.Equal(s, frame)
			}
			if !known {
				t.Fatalf("accepted a frame never sealed: % x", frame)
			}
			if !bytes.Equal(payload, frame[:len(frame)-BlockLen]) || info.KeyID != k.ID() {
				t.Fatalf("payload/info wrong: %+v", info)
			}
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	r := newRig(b, VerifierOptions{})
	frame := arpFrame(srcMAC)
	buf := make([]byte, 0, len(frame)+BlockLen)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.sig.Seal(append(buf[:0], frame...)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen measures accepting genuine frames from one sender.
func BenchmarkOpen(b *testing.B) {
	r := newRig(b, VerifierOptions{})
	const batch = 1 << 16
	frames := make([][]byte, batch)
	for i := range frames {
		frames[i] = r.seal(b, arpFrame(srcMAC))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == batch {
			b.StopTimer()
			r.ver = NewVerifier(ring(b, r.key), VerifierOptions{Now: r.clk.Now})
			i = 0
			b.StartTimer()
		}
		if _, _, err := r.ver.Open(frames[i], srcMAC); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkOpenForged measures the cost of a forged frame (bad tag), what a
// flood costs the receiver per frame.
func BenchmarkOpenForged(b *testing.B) {
	r := newRig(b, VerifierOptions{})
	f := r.seal(b, arpFrame(srcMAC))
	f[len(f)-1] ^= 1
	b.ReportAllocs()
	for b.Loop() {
		r.ver.Open(f, srcMAC)
	}
}

// BenchmarkSealMarkWrite is the worst case of Seal: a reserve of one
// nanosecond makes every Seal write the state file (write, fsync, rename,
// fsync of the directory), which the default reserve does once a minute.
func BenchmarkSealMarkWrite(b *testing.B) {
	s, err := OpenSequence(b.TempDir()+"/seq", SequenceOptions{Reserve: time.Nanosecond})
	if err != nil {
		b.Fatal(err)
	}
	sig := NewSigner(ring(b, testKey(b, 1)), s)
	frame := arpFrame(srcMAC)
	buf := make([]byte, 0, len(frame)+BlockLen)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sig.Seal(append(buf[:0], frame...)); err != nil {
			b.Fatal(err)
		}
	}
}
