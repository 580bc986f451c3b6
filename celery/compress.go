package celery

import (
	"bytes"
	"compress/bzip2"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz"
)

// Compression MIME types as kombu writes them in headers["compression"].
const (
	// CompressionZlib is what kombu labels "gzip" and "zlib": a zlib stream
	// (RFC 1950), not a gzip file.
	CompressionZlib  = "application/x-gzip"
	CompressionBzip2 = "application/x-bz2"
	// CompressionXZ is kombu's "lzma": Python's lzma.compress, an .xz container.
	CompressionXZ = "application/x-lzma"
)

// maxDecompressed bounds what one message may expand to, so a compression
// bomb is refused instead of exhausting memory.
const maxDecompressed = 256 << 20

// compressionAliases maps the names kombu accepts to the header values.
var compressionAliases = map[string]string{
	"zlib": CompressionZlib, "gzip": CompressionZlib, CompressionZlib: CompressionZlib, "application/zlib": CompressionZlib,
	"bzip2": CompressionBzip2, "bzip": CompressionBzip2, CompressionBzip2: CompressionBzip2,
	"lzma": CompressionXZ, "xz": CompressionXZ, CompressionXZ: CompressionXZ,
}

// NormalizeCompression maps a compression name or MIME type to the MIME type
// qagen writes, or reports that qagen cannot encode it.
func NormalizeCompression(name string) (string, error) {
	if name == "" {
		return "", nil
	}
	mime, ok := compressionAliases[name]
	if !ok || mime == CompressionBzip2 {
		return "", fmt.Errorf("celery: cannot compress with %q (supported: zlib/gzip, lzma/xz)", name)
	}
	return mime, nil
}

func decompress(kind string, data []byte) ([]byte, error) {
	var r io.Reader
	switch compressionAliases[kind] {
	case CompressionZlib:
		zr, err := zlib.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	case CompressionBzip2:
		r = bzip2.NewReader(bytes.NewReader(data))
	case CompressionXZ:
		if err := checkXZDict(data); err != nil {
			return nil, err
		}
		xr, err := xz.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		r = xr
	default:
		return nil, fmt.Errorf("unsupported compression %q", kind)
	}
	out, err := io.ReadAll(io.LimitReader(r, maxDecompressed+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxDecompressed {
		return nil, fmt.Errorf("decompressed body exceeds %d bytes", maxDecompressed)
	}
	return out, nil
}

// maxXZDict bounds the LZMA2 dictionary an xz body may declare. The xz
// reader allocates the declared size (up to 4 GiB) before decoding a block,
// whatever the payload, so without this a 100-byte message could claim
// gigabytes. Python's lzma.compress uses 8 MiB; preset 9 uses 64 MiB.
const maxXZDict = 64 << 20

var errXZFormat = errors.New("malformed xz stream")

// checkXZDict walks an .xz file forward exactly as the decoder will (stream
// headers, block headers, LZMA2 chunk framing, index, footer, padding)
// without decoding, and refuses any block whose dictionary exceeds maxXZDict.
func checkXZDict(data []byte) error {
	for len(data) > 0 {
		if len(data) >= 4 && data[0]|data[1]|data[2]|data[3] == 0 {
			data = data[4:] // stream padding
			continue
		}
		if len(data) < 12 || string(data[:6]) != "\xfd7zXZ\x00" {
			return errXZFormat
		}
		checkLen := [16]int{0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64}[data[7]&0x0f]
		data = data[12:]
		for len(data) > 0 && data[0] != 0 { // a block; 0 starts the index
			hlen := (int(data[0]) + 1) * 4
			if hlen > len(data) {
				return errXZFormat
			}
			if err := checkXZBlockHeader(data[1 : hlen-4]); err != nil {
				return err
			}
			n, ok := lzma2Len(data[hlen:])
			if !ok {
				return errXZFormat
			}
			blk := (hlen+n+3)&^3 + checkLen
			if blk > len(data) {
				return errXZFormat
			}
			data = data[blk:]
		}
		// Index: indicator, record count, records, padding, CRC32; then the
		// 12-byte stream footer.
		if len(data) == 0 {
			return errXZFormat
		}
		p := 1
		count, n := binary.Uvarint(data[p:])
		if n <= 0 || count > uint64(len(data)) {
			return errXZFormat
		}
		p += n
		for i := uint64(0); i < 2*count; i++ {
			if _, n = binary.Uvarint(data[p:]); n <= 0 {
				return errXZFormat
			}
			p += n
		}
		p = (p+3)&^3 + 4 + 12
		if p > len(data) {
			return errXZFormat
		}
		data = data[p:]
	}
	return nil
}

// checkXZBlockHeader checks the filter flags of one block header (without its
// size byte and CRC32).
func checkXZBlockHeader(h []byte) error {
	flags, p := h[0], 1
	for _, bit := range []byte{0x40, 0x80} { // compressed / uncompressed size
		if flags&bit != 0 {
			_, n := binary.Uvarint(h[p:])
			if n <= 0 {
				return errXZFormat
			}
			p += n
		}
	}
	for f := 0; f <= int(flags&3); f++ {
		id, n := binary.Uvarint(h[p:])
		if n <= 0 {
			return errXZFormat
		}
		p += n
		size, n := binary.Uvarint(h[p:])
		if n <= 0 || size > uint64(len(h)-p-n) {
			return errXZFormat
		}
		p += n
		props := h[p : p+int(size)]
		p += int(size)
		if id == 0x21 { // LZMA2
			if len(props) != 1 || props[0] > 40 {
				return errXZFormat
			}
			if dict := uint64(2|props[0]&1) << (props[0]/2 + 11); dict > maxXZDict {
				return fmt.Errorf("xz dictionary of %d bytes exceeds the %d byte limit", dict, maxXZDict)
			}
		}
	}
	return nil
}

// lzma2Len returns the length of the LZMA2 data at the start of b, end
// marker included, from the chunk headers alone.
func lzma2Len(b []byte) (int, bool) {
	p := 0
	for p < len(b) {
		switch c := b[p]; {
		case c == 0:
			return p + 1, true
		case c == 1 || c == 2: // uncompressed chunk
			if p+3 > len(b) {
				return 0, false
			}
			p += 3 + (int(b[p+1])<<8 | int(b[p+2])) + 1
		case c >= 0x80: // LZMA chunk; resets of state 2 and 3 carry a props byte
			if p+5 > len(b) {
				return 0, false
			}
			n := 5 + (int(b[p+3])<<8 | int(b[p+4])) + 1
			if c >= 0xc0 {
				n++
			}
			p += n
		default:
			return 0, false
		}
	}
	return 0, false
}

func compress(kind string, data []byte) ([]byte, error) {
	var buf bytes.Buffer
	switch kind {
	case CompressionZlib:
		w := zlib.NewWriter(&buf)
		if _, err := w.Write(data); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case CompressionXZ:
		w, err := xz.NewWriter(&buf)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(data); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unsupported compression %q", kind)
	}
	return buf.Bytes(), nil
}
