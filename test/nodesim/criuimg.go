package nodesim

import (
	"encoding/binary"
)

// Magic numbers of CRIU image files (criu/include/magic.h), so that the small
// CRIU images in a simulated archive look like real ones to tools that peek.
const (
	criuImgCommonMagic  = 0x54564319
	criuImgServiceMagic = 0x55105940
	criuInventoryMagic  = 0x58313116
	criuPstreeMagic     = 0x50273030
	criuPagemapMagic    = 0x56084025
	criuStatsMagic      = 0x57093306
	pageSize            = 4096
)

// pb is a tiny protobuf encoder: CRIU images are protobuf entries, and the
// few fields written here do not justify the generated CRIU types.
type pb []byte

func (b pb) varint(field int, v uint64) pb {
	b = binary.AppendUvarint(b, uint64(field)<<3)
	return binary.AppendUvarint(b, v)
}

func (b pb) bytes(field int, v []byte) pb {
	b = binary.AppendUvarint(b, uint64(field)<<3|2)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// criuImage lays out an image as CRIU does: magic words, then each entry
// preceded by its 32-bit size.
func criuImage(service bool, magic uint32, entries ...pb) []byte {
	first := uint32(criuImgCommonMagic)
	if service {
		first = criuImgServiceMagic
	}
	out := binary.LittleEndian.AppendUint32(nil, first)
	out = binary.LittleEndian.AppendUint32(out, magic)
	for _, e := range entries {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(e)))
		out = append(out, e...)
	}
	return out
}

func criuInventory() []byte {
	// img_version=2, fdinfo_per_id=true, ns_per_id=true.
	return criuImage(true, criuInventoryMagic, pb(nil).varint(1, 2).varint(2, 1).varint(4, 1))
}

func criuPstree() []byte {
	// pid=1, ppid=0, pgid=1, sid=1: the container's init.
	return criuImage(false, criuPstreeMagic, pb(nil).varint(1, 1).varint(2, 0).varint(3, 1).varint(4, 1))
}

func criuPagemap(memoryBytes int64) []byte {
	pages := (memoryBytes + pageSize - 1) / pageSize
	head := pb(nil).varint(1, 1) // pages_id=1 -> pages-1.img
	entry := pb(nil).varint(1, 0x7f0000000000).varint(2, uint64(pages))
	return criuImage(false, criuPagemapMagic, head, entry)
}

// criuStats is stats-dump as go-criu's stats reader parses it: service magic,
// stats magic, payload size, then a StatsEntry whose dump field carries the
// required DumpStatsEntry fields (times in microseconds).
func criuStats(frozen, memwrite uint64, pagesWritten uint64) []byte {
	dump := pb(nil).
		varint(1, frozen/4). // freezing_time
		varint(2, frozen).   // frozen_time
		varint(3, frozen/2). // memdump_time
		varint(4, memwrite). // memwrite_time
		varint(5, pagesWritten).
		varint(6, 0).
		varint(7, pagesWritten)
	payload := pb(nil).bytes(1, dump)
	out := binary.LittleEndian.AppendUint32(nil, criuImgServiceMagic)
	out = binary.LittleEndian.AppendUint32(out, criuStatsMagic)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(payload)))
	return append(out, payload...)
}
