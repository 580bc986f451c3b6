package celery

import (
	"bytes"
	"compress/bzip2"
	"compress/zlib"
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
