package memory

import (
	"encoding/binary"
	"math"
)

// rowLog is UsageStore's detailed log: its rows in arrival order, and the IDs it holds
// for WriteBatch's duplicate check.
//
// The rows are kept in chunks of a fixed size, all full but the last, so the log grows
// without copying what it holds (a single slice copies every row each time it doubles,
// and holds twice the memory while it does) and drops its oldest rows a chunk at a time,
// into a spare list that later chunks reuse.
//
// Each chunk indexes the IDs of its own rows, so dropping a chunk drops its index at once
// (one global index paid a map delete per row dropped, and a lookup in a map of a
// million IDs, far larger than the CPU's caches, per row written), and a lookup rarely
// needs more than the newest chunk's index, which stays in cache: an EcoID starts with
// its creation time, and the Tracker writes records about in the order of their times.
// Each chunk keeps the span of its IDs' times, and an ID newer than every chunk but the
// last can only be in the last. Any other ID (a batch sent again, a late record) is
// looked up in every chunk whose span holds its time: exact, only slower.
//
// Rows that Maintain drops out of arrival order (older than the retention, behind newer
// ones) become tombstones (status 0, which no valid record has) until their chunk holds
// nothing else or leaves the log.
type rowLog struct {
	size     int // rows per chunk
	chunks   []*logChunk
	spans    []idSpan    // spans[i] is chunks[i]'s, kept apart so a search reads only spans
	spare    []*logChunk // dropped chunks, for reuse: at most spareMax
	spareMax int
	// olderMax is the latest ID time of every chunk but the last (0 when there is none):
	// an ID after it can only be in the last chunk.
	olderMax uint64
	rows     int // rows held, tombstones included: what the store's cap bounds
	live     int // rows held that are not tombstones
}

// logChunk is a run of rows and the IDs of those that are live.
type logChunk struct {
	rows []usageRow
	ids  map[rowID]struct{}
}

// idSpan is the earliest and latest ID time of a chunk's rows, as idTime gives them.
type idSpan struct{ lo, hi uint64 }

// idTime is the time an ID begins with (its first 8 base62 digits), as a number in the
// same order: the digits are ASCII in numeric order and of a fixed width, so their bytes
// read big-endian compare as the times do.
func idTime(id *rowID) uint64 { return binary.BigEndian.Uint64(id[:8]) }

// maxChunkRows bounds a chunk at 4,096 rows (192 KiB, and an index of about 100 KiB).
const maxChunkRows = 4096

// newRowLog returns an empty log for a store of at most maxRows rows. A chunk holds at
// most an eighth of that, so that dropping the oldest eighth drops whole chunks.
func newRowLog(maxRows int) rowLog {
	size := max(1, min(maxChunkRows, maxRows/8))
	return rowLog{size: size, spareMax: max(1, maxRows/8/size)} // spares: what one drop frees
}

// held reports whether the log holds a row with id.
func (l *rowLog) held(id *rowID) bool {
	n := len(l.chunks)
	if n == 0 {
		return false
	}
	t := idTime(id)
	if t > l.olderMax {
		_, ok := l.chunks[n-1].ids[*id]
		return ok
	}
	for i, sp := range l.spans {
		if sp.lo <= t && t <= sp.hi {
			if _, ok := l.chunks[i].ids[*id]; ok {
				return true
			}
		}
	}
	return false
}

// add appends row, whose ID held has reported as not held.
func (l *rowLog) add(row usageRow) {
	n := len(l.chunks)
	if n == 0 || len(l.chunks[n-1].rows) == l.size {
		if n > 0 {
			l.olderMax = max(l.olderMax, l.spans[n-1].hi)
		}
		var c *logChunk
		if k := len(l.spare); k > 0 {
			c, l.spare = l.spare[k-1], l.spare[:k-1]
		} else {
			c = &logChunk{rows: make([]usageRow, 0, l.size), ids: make(map[rowID]struct{}, l.size)}
		}
		l.chunks = append(l.chunks, c)
		l.spans = append(l.spans, idSpan{lo: math.MaxUint64})
		n++
	}
	c, sp := l.chunks[n-1], &l.spans[n-1]
	c.rows = append(c.rows, row)
	c.ids[row.id] = struct{}{}
	t := idTime(&row.id)
	sp.lo, sp.hi = min(sp.lo, t), max(sp.hi, t)
	l.rows++
	l.live++
}

// dropOldest drops whole chunks from the front until at least n rows have gone (or the
// log is empty), calling dropped for each live row it drops.
func (l *rowLog) dropOldest(n int, dropped func(*usageRow)) {
	k := 0
	for ; n > 0 && k < len(l.chunks); k++ {
		c := l.chunks[k]
		for i := range c.rows {
			if c.rows[i].status != 0 {
				dropped(&c.rows[i])
			}
		}
		n -= len(c.rows)
		l.rows -= len(c.rows)
		l.live -= len(c.ids)
		if len(l.spare) < l.spareMax {
			c.rows = c.rows[:0]
			clear(c.ids)
			l.spare = append(l.spare, c)
		}
	}
	if k == 0 {
		return
	}
	kept := copy(l.chunks, l.chunks[k:])
	clear(l.chunks[kept:])
	l.chunks = l.chunks[:kept]
	l.spans = l.spans[:copy(l.spans, l.spans[k:])]
	l.olderMax = 0
	for _, sp := range l.spans[:max(0, len(l.spans)-1)] {
		l.olderMax = max(l.olderMax, sp.hi)
	}
}

// dropBefore drops the live rows older than cutoff (Unix µs), calling dropped for each,
// then the chunks at the front that hold no live row.
func (l *rowLog) dropBefore(cutoff int64, dropped func(*usageRow)) {
	for _, c := range l.chunks {
		for i := range c.rows {
			if r := &c.rows[i]; r.status != 0 && r.at < cutoff {
				dropped(r)
				delete(c.ids, r.id)
				r.status = 0
				l.live--
			}
		}
	}
	empty := 0
	for _, c := range l.chunks {
		if len(c.ids) > 0 {
			break
		}
		empty += len(c.rows)
	}
	l.dropOldest(empty, dropped) // never calls dropped: these chunks hold no live row
}

// each calls f for every live row, in arrival order.
func (l *rowLog) each(f func(*usageRow)) {
	for _, c := range l.chunks {
		for i := range c.rows {
			if c.rows[i].status != 0 {
				f(&c.rows[i])
			}
		}
	}
}
