package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
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
	out  io.Writer
	bufs sync.Pool // *[]byte
}

// newRequestLog returns a requestLog writing to out, a line per Write.
func newRequestLog(out io.Writer) *requestLog {
	return &requestLog{out: out, bufs: sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}}
}

// log writes the line of one answered request, stamped at.
func (l *requestLog) log(at time.Time, r *http.Request, status, bytes int, took time.Duration) {
	bp := l.bufs.Get().(*[]byte)
	b := append((*bp)[:0], `{"time":"`...)
	b = at.AppendFormat(b, time.RFC3339Nano)
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
