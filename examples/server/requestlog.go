package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// requestLog writes the request log: one JSON line per request, the same line the
// server's slog JSON handler would write for
//
//	log.LogAttrs(ctx, level, "request", slog.String("method", …), slog.String("path", …),
//		slog.Int("status", …), slog.Int("bytes", …), slog.Duration("duration", …))
//
// ({"time":…,"level":"INFO","msg":"request","method":"GET","path":"/api/v1/ping",
// "status":200,"bytes":52,"duration":41250}; level ERROR for a 5xx), but formatted here.
// Through slog the line took a quarter of the whole server's handler time on the API
// route (the caller's PC, the Record, the handler's generic attribute walk); this is
// a few appends into a pooled buffer. requestlog_test.go holds it to slog's output.
// The path is the URL's path, never its query, which may carry secrets.
type requestLog struct {
	out   io.Writer
	bufs  sync.Pool // *[]byte
	stamp atomic.Pointer[stamp]
}

// newRequestLog returns a requestLog writing to out, a line per Write.
func newRequestLog(out io.Writer) *requestLog {
	return &requestLog{out: out, bufs: sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}}
}

// log writes the line of one answered request, stamped at.
func (l *requestLog) log(at time.Time, r *http.Request, status, bytes int, took time.Duration) {
	bp := l.bufs.Get().(*[]byte)
	b := append((*bp)[:0], `{"time":"`...)
	b = l.appendTime(b, at)
	if status >= 500 {
		b = append(b, `","level":"ERROR","msg":"request","method":`...)
	} else {
		b = append(b, `","level":"INFO","msg":"request","method":`...)
	}
	b = appendJSONString(b, r.Method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, r.URL.Path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(bytes), 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, int64(took), 10)
	b = append(b, "}\n"...)
	_, _ = l.out.Write(b)
	if cap(b) <= 4<<10 { // a line with a huge path is not kept
		*bp = b
		l.bufs.Put(bp)
	}
}

// stamp is the RFC 3339 text of one second in one location, split where a fraction goes:
// time.RFC3339Nano's text of any instant of that second is prefix, the fraction, zone.
type stamp struct {
	sec          int64
	loc          *time.Location
	prefix, zone string
}

// appendTime appends at as at.AppendFormat(b, time.RFC3339Nano) does. The date, time of
// day and zone are formatted once a second and kept: formatting them for every line was
// 800 instructions of each request on the API route (callgrind), nearly half the line.
func (l *requestLog) appendTime(b []byte, at time.Time) []byte {
	sec := at.Unix()
	st := l.stamp.Load()
	if st == nil || st.sec != sec || st.loc != at.Location() {
		whole := at.Add(-time.Duration(at.Nanosecond())).Format(time.RFC3339Nano) // no fraction
		i := strings.IndexByte(whole, 'T') + len("T15:04:05")
		st = &stamp{sec: sec, loc: at.Location(), prefix: whole[:i], zone: whole[i:]}
		l.stamp.Store(st) // concurrent lines of a new second may each format it: the same text
	}
	b = append(b, st.prefix...)
	if ns := at.Nanosecond(); ns != 0 { // nine digits, trailing zeros cut, as RFC3339Nano does
		var d [10]byte
		d[0] = '.'
		for i := 9; i >= 1; i-- {
			d[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := len(d)
		for d[n-1] == '0' {
			n--
		}
		b = append(b, d[:n]...)
	}
	return append(b, st.zone...)
}

// appendJSONString appends s as a JSON string. A string of printable ASCII without
// quotes or backslashes, as paths and methods nearly always are, is copied as it is;
// anything else goes through encoding/json, which escapes it (and replaces invalid
// UTF-8 with U+FFFD, as slog does).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			q, err := json.Marshal(s)
			if err != nil { // never for a string; keep the line valid regardless
				q = []byte(`""`)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
