package nodesim

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
)

// memoryHeaderSize is the size of the header at the start of a container's
// simulated memory: a magic string, the seed, the counter and the size, so a
// human can read the state out of pages-1.img with a hex dump.
const memoryHeaderSize = 64

var memoryMagic = [16]byte{'N', 'O', 'D', 'E', 'S', 'I', 'M', '-', 'M', 'E', 'M', 'O', 'R', 'Y', 0, 1}

// MemoryReader streams the simulated memory of a container whose seed is seed
// at counter value counter: a header followed by a PCG stream seeded from
// (seed, counter). Its content changes completely with the counter, it is the
// same every time for the same inputs, and it is generated on the fly so even
// a GiB never sits in RAM.
func MemoryReader(seed, counter uint64, size int64) io.Reader {
	if size < 0 {
		size = 0
	}
	var hdr [memoryHeaderSize]byte
	copy(hdr[:], memoryMagic[:])
	binary.LittleEndian.PutUint64(hdr[16:], seed)
	binary.LittleEndian.PutUint64(hdr[24:], counter)
	binary.LittleEndian.PutUint64(hdr[32:], uint64(size))
	return &memoryReader{
		hdr:  hdr,
		rng:  rand.NewPCG(seed, counter^0x9e3779b97f4a7c15),
		size: size,
	}
}

type memoryReader struct {
	hdr  [memoryHeaderSize]byte
	rng  *rand.PCG
	size int64
	off  int64
	// spill holds the unread tail of the last 8-byte word.
	spill    [8]byte
	spillLen int
}

func (m *memoryReader) Read(p []byte) (int, error) {
	if m.off >= m.size {
		return 0, io.EOF
	}
	if rem := m.size - m.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	n := 0
	for n < len(p) && m.off < memoryHeaderSize {
		p[n] = m.hdr[m.off]
		n++
		m.off++
	}
	for n < len(p) && m.spillLen > 0 {
		p[n] = m.spill[8-m.spillLen]
		m.spillLen--
		n++
		m.off++
	}
	for len(p)-n >= 8 {
		binary.LittleEndian.PutUint64(p[n:], m.rng.Uint64())
		n += 8
		m.off += 8
	}
	if n < len(p) {
		binary.LittleEndian.PutUint64(m.spill[:], m.rng.Uint64())
		m.spillLen = 8
		for n < len(p) {
			p[n] = m.spill[8-m.spillLen]
			m.spillLen--
			n++
			m.off++
		}
	}
	return n, nil
}

// MemorySHA256 returns the hex sha256 of MemoryReader(seed, counter, size):
// what pages-1.img holds when the container is checkpointed at that counter.
func MemorySHA256(seed, counter uint64, size int64) string {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	// Neither MemoryReader nor a hash ever return an error.
	_, _ = io.CopyBuffer(h, MemoryReader(seed, counter, size), buf)
	return hex.EncodeToString(h.Sum(nil))
}
