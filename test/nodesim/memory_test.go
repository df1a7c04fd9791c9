package nodesim

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"testing"
)

func readAllChunked(t *testing.T, r io.Reader, chunk int) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, chunk)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestMemoryReaderIsDeterministicWhateverTheReadSizes(t *testing.T) {
	const size = 10_000 + 3 // not a multiple of 8
	want := readAllChunked(t, MemoryReader(42, 7, size), 1<<16)
	if len(want) != size {
		t.Fatalf("got %d bytes, want %d", len(want), size)
	}
	for _, chunk := range []int{1, 3, 7, 8, 13, 64, 65, 4096} {
		if got := readAllChunked(t, MemoryReader(42, 7, size), chunk); !bytes.Equal(got, want) {
			t.Fatalf("reading in chunks of %d gives different memory", chunk)
		}
	}
	if string(want[:14]) != "NODESIM-MEMORY" {
		t.Errorf("header magic = %q", want[:16])
	}
	if got := binary.LittleEndian.Uint64(want[24:]); got != 7 {
		t.Errorf("header counter = %d, want 7", got)
	}
	sum := sha256.Sum256(want)
	if got := MemorySHA256(42, 7, size); got != hex.EncodeToString(sum[:]) {
		t.Errorf("MemorySHA256 = %s, want %x", got, sum)
	}
}

func TestMemoryChangesWithCounterAndSeed(t *testing.T) {
	a := MemorySHA256(1, 1, 4096)
	if b := MemorySHA256(1, 2, 4096); a == b {
		t.Error("memory did not change when the counter grew")
	}
	if b := MemorySHA256(2, 1, 4096); a == b {
		t.Error("two seeds give the same memory")
	}
	x := readAllChunked(t, MemoryReader(1, 1, 4096), 512)
	y := readAllChunked(t, MemoryReader(1, 2, 4096), 512)
	if bytes.Equal(x[memoryHeaderSize:], y[memoryHeaderSize:]) {
		t.Error("only the header changed with the counter")
	}
	if n := len(readAllChunked(t, MemoryReader(1, 1, 10), 4)); n != 10 {
		t.Errorf("memory smaller than its header: %d bytes, want 10", n)
	}
	if n := len(readAllChunked(t, MemoryReader(1, 1, 0), 4)); n != 0 {
		t.Errorf("empty memory: %d bytes", n)
	}
}
