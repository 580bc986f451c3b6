package celery

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"io"
	"math/rand"
	"os"
	"strings"
	"testing"
)

// xzBody is what these streams decompress to.
const xzBody = `[[1, 2], {"k": "\u00fc", "pad": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`

// Streams made by XZ Utils 5.4.1 from xzBody, in the layouts the forward
// walk in checkXZDict must follow.
var xzGood = map[string]string{
	// xz -T1 --block-size=40 -C crc32: 5 blocks, no sizes in the headers,
	// the last one an uncompressed LZMA2 chunk.
	"multi-block crc32": "/Td6WFoAAAFpIt42AgAhARYAAAB0L+Wj4AAnACZdAC3gwFghFc2aLE8PhabQwy14jW9YUfERoarmAcSJqIPr/BXmFAAAAAAAYJtO3QIAIQEWAAAAdC/lo+AAJwAGXQAw7iYAAAAAAAAlilvJAgAhARYAAAB0L+Wj4AAnACVdADDrBI+iv2JKyZbndCZ/dqCAYFNcPerM9CPd+r5t5g3L3P8v2OkAAAAA8rvyjAIAIQEWAAAAdC/lo+AAJwAdXQA1nMBCkCnJ0poTeUCwQ0TI9XUEOxpHBnLEBmlGAAAAAABf8/FTAgAhARYAAAB0L+WjAQAAXQAAAADEwtjHAAU+KB4oPSg1KBUBABW+KJvjUUADAAAAAAFZWg==",
	// xz -T2 --block-size=40 -C crc64: sizes in the block headers.
	"multi-block sizes crc64": "/Td6WFoAAATm1rRGAsAuKCEBFgCnUNki4AAnACZdAC3gwFghFc2aLE8PhabQwy14jW9YUfERoarmAcSJqIPr/BXmFAAAAAAAq2UUbRVU5TMCwA4oIQEWAJFVdSXgACcABl0AMO4mAAAAAAAA6xZ3zRqvEkUCwC0oIQEWAAkiTaTgACcAJV0AMOsEj6K/YkrJlud0Jn92oIBgU1w96sz0I936vm3mDcvc/y/Y6QAAAADYQbkx3HYIpQLAJSghARYAZKAeSOAAJwAdXQA1nMBCkCnJ0poTeUCwQ0TI9XUEOxpHBnLEBmlGAAAAAADsawKdCNp72wLABQEhARYAJ+hjgwEAAF0AAAAAi2Oh3bIj3zkABUIoIihBKDkoGQEqCyqMFBc7MAMAAAAABFla",
	"sha256 check":            "/Td6WFoAAArh+wyhAgAhARYAAAB0L+Wj4ACgAE5dAC3gwFghFc2aLE8PhabQwy14jW9YUfERoarmAcSJqIPr/BnTo+BHdnvP9B6BjXkLpw/bsJFUesQB5cPBDQm5L6qQXVM4DpLqSJbYVAMCAAAAALSkPM+D+MsWwT+Qb5J8uSHQJaDSPF74j+jjytuSaV3+AAGCAaEBAADpXFhZtunfHAIAAAAAClla",
	"no check":                "/Td6WFoAAAD/EtlBAgAhARYAAAB0L+Wj4ACgAE5dAC3gwFghFc2aLE8PhabQwy14jW9YUfERoarmAcSJqIPr/BnTo+BHdnvP9B6BjXkLpw/bsJFUesQB5cPBDQm5L6qQXVM4DpLqSJbYVAMCAAAAAAABYqEBAAAAz6uSc6gACvwCAAAAAABZWg==",
	// Two streams with 8 bytes of stream padding between them.
	"concatenated streams": "/Td6WFoAAATm1rRGAgAhARYAAAB0L+Wj4ABFACZdAC3gwFghFc2aLE8PhabQwy14jW9YUfERoarmAcSJqIPr/BmwuzAAAAAALFWC9RT2uxQAAUJGCXx2fR+2830BAAAAAARZWgAAAAAAAAAA/Td6WFoAAATm1rRGAgAhARYAAAB0L+Wj4ABaADJdADDm2ER9FfrQac97py+XLGOVtEYZ7feqM7LtVx1PNP1lZZ8LWWN5/S1cwpAZQ3QJpCAAAAAAgf/f15WTtScAAU5b3F/Fsh+2830BAAAAAARZWg==",
}

// Streams that declare a dictionary far beyond maxXZDict: the xz reader
// would allocate it before decoding anything.
var xzHuge = map[string]string{
	// echo '[[1], {}, {}]' | xz --lzma2=dict=1536MiB (72 bytes, 1.5 GiB)
	"first block": "/Td6WFoAAATm1rRGAgAhASUAAAA7eHtBAQANW1sxXSwge30sIHt9XQoAAADP++OlmhnfcwABJg4IG+AEH7bzfQEAAAAABFla",
	// a normal stream followed by a 1.5 GiB one
	"second stream": "/Td6WFoAAATm1rRGAgAhARYAAAB0L+Wj4ABFACZdAC3gwFghFc2aLE8PhabQwy14jW9YUfERoarmAcSJqIPr/BmwuzAAAAAALFWC9RT2uxQAAUJGCXx2fR+2830BAAAAAARZWv03elhaAAAE5ta0RgIAIQElAAAAO3h7QeAAWgAyXQAw5thEfRX60GnPe6cvlyxjlbRGGe33qjOy7VcdTzT9ZWWfC1ljef0tXMKQGUN0CaQgAAAAAIH/39eVk7UnAAFOW9xfxbIftvN9AQAAAAAEWVo=",
	// "multi-block crc32" with block 2 patched to dictionary code 40
	// (4 GiB) and its header CRC32 fixed up.
	"second block": "/Td6WFoAAAFpIt42AgAhARYAAAB0L+Wj4AAnACZdAC3gwFghFc2aLE8PhabQwy14jW9YUfERoarmAcSJqIPr/BXmFAAAAAAAYJtO3QIAIQEoAAAA5qARs+AAJwAGXQAw7iYAAAAAAAAlilvJAgAhARYAAAB0L+Wj4AAnACVdADDrBI+iv2JKyZbndCZ/dqCAYFNcPerM9CPd+r5t5g3L3P8v2OkAAAAA8rvyjAIAIQEWAAAAdC/lo+AAJwAdXQA1nMBCkCnJ0poTeUCwQ0TI9XUEOxpHBnLEBmlGAAAAAABf8/FTAgAhARYAAAB0L+WjAQAAXQAAAADEwtjHAAU+KB4oPSg1KBUBABW+KJvjUUADAAAAAAFZWg==",
}

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecompressXZLayouts(t *testing.T) {
	for name, s := range xzGood {
		out, err := decompress(CompressionXZ, b64(t, s))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if string(out) != xzBody {
			t.Errorf("%s: got %q", name, out)
		}
	}
	// qagen's own encoder, on compressible and incompressible input (the
	// latter makes LZMA2 emit uncompressed chunks).
	rnd := make([]byte, 300000)
	rand.New(rand.NewSource(1)).Read(rnd)
	// Runs of random bytes and zeros give the chunk sequence 01 c2 02 82 82:
	// uncompressed chunks, and an LZMA chunk with control 0xC0-0xDF (state
	// reset plus a properties byte) that is followed by further chunks.
	var mixed []byte
	for i := 0; i < 3; i++ {
		mixed = append(mixed, rnd[i*100000:(i+1)*100000]...)
		mixed = append(mixed, make([]byte, 100000)...)
	}
	for _, in := range [][]byte{[]byte(strings.Repeat(xzBody, 500)), rnd, mixed, {}} {
		c, err := compress(CompressionXZ, in)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkXZDict(c); err != nil {
			t.Errorf("checkXZDict rejects qagen's own %d-byte stream: %v", len(in), err)
		}
		out, err := decompress("xz", c)
		if err != nil || !bytes.Equal(out, in) {
			t.Errorf("xz round trip of %d bytes: %v", len(in), err)
		}
	}
}

func TestDecompressXZHugeDictionary(t *testing.T) {
	for name, s := range xzHuge {
		out, err := decompress(CompressionXZ, b64(t, s))
		if err == nil {
			t.Errorf("%s: accepted a stream that declares a >1 GiB dictionary (%d bytes out)", name, len(out))
		} else if !strings.Contains(err.Error(), "dictionary") {
			t.Errorf("%s: error %v does not name the dictionary", name, err)
		}
	}
}

func TestCheckXZDictMalformed(t *testing.T) {
	good := b64(t, xzGood["multi-block crc32"])
	// Every truncation is either rejected by the walk or harmless; none may
	// panic or slip a huge dictionary through.
	for i := 0; i < len(good); i++ {
		_ = checkXZDict(good[:i])
	}
	for _, bad := range [][]byte{
		[]byte("\xfd7zXZ"),
		[]byte("not xz at all"),
		append([]byte("\xfd7zXZ\x00\x00\x01\x69\x22\xde\x36"), 0xff),
	} {
		if err := checkXZDict(bad); err == nil {
			t.Errorf("checkXZDict(%q) = nil", bad)
		}
	}
	if err := checkXZDict(nil); err != nil {
		t.Errorf("empty input: %v (the xz reader reports it)", err)
	}
}

func TestDecompressBomb(t *testing.T) {
	// Decompressing up to the 256 MiB cap peaks near 600 MB RSS (io.ReadAll
	// grows its buffer past the cap), too much for a default run.
	if testing.Short() || os.Getenv("QAGEN_SLOW_TESTS") == "" {
		t.Skip("allocates ~600 MB; set QAGEN_SLOW_TESTS=1 to run")
	}
	// 257 MiB of zeros compress to ~256 KiB of zlib.
	var c bytes.Buffer
	w, _ := zlib.NewWriterLevel(&c, zlib.BestSpeed)
	if _, err := io.CopyN(w, zeroReader{}, maxDecompressed+1<<20); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := decompress(CompressionZlib, c.Bytes()); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("decompression bomb: %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func FuzzCheckXZDict(f *testing.F) {
	for _, m := range []map[string]string{xzGood, xzHuge} {
		for _, s := range m {
			b, _ := base64.StdEncoding.DecodeString(s)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := checkXZDict(data)
		// A stream the walk accepts is laid out as the walk says: cutting
		// any byte off its end must not also be accepted as a full stream
		// with the same last block (trailing bytes are never ignored).
		if err == nil && len(data) > 0 && data[len(data)-1] != 0 {
			if checkXZDict(data[:len(data)-1]) == nil && bytes.HasSuffix(data, []byte("YZ")) {
				t.Fatalf("walk accepts %x both with and without its last byte", data)
			}
		}
	})
}
