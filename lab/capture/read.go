package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gopacket/gopacket/pcapgo"
)

// ErrMalformed is wrapped by errors about a capture file that is not valid pcapng.
var ErrMalformed = errors.New("capture: malformed pcapng")

const (
	blockSectionHeader     = 0x0A0D0D0A
	blockDecryptionSecrets = 0x0000000A
	secretsTLSKeyLog       = 0x544c534b // "TLSK"
)

// ReadFile reads a pcapng file written by this package (or any
// little-endian pcapng): its section comment, interface description, secrets
// and packets with their comments.
func ReadFile(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("capture: %w", err)
	}
	return Parse(b)
}

// Parse decodes a pcapng file held in memory; see ReadFile.
func Parse(b []byte) (File, error) {
	var f File
	secrets, err := Secrets(b)
	if err != nil {
		return f, err
	}
	f.Secrets = secrets
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		return f, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	f.Description = r.SectionInfo().Comment
	if intf, err := r.Interface(0); err == nil {
		f.Interface = intf.Name
		f.Snaplen = int(intf.SnapLength)
		f.Experiment = intf.Description
	}
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err == io.EOF {
			return f, nil
		}
		if err != nil {
			return f, fmt.Errorf("%w: packet %d: %w", ErrMalformed, len(f.Packets)+1, err)
		}
		f.Packets = append(f.Packets, &Packet{Time: ci.Timestamp, Data: data, Comments: opts.Comments})
	}
}

// Secrets walks the blocks of a little-endian pcapng file and returns the
// payload of every TLS key log decryption-secrets block. gopacket's reader
// parses these blocks but keeps them to itself. Secrets never panics: any
// truncated or inconsistent block is an error wrapping ErrMalformed.
func Secrets(b []byte) ([][]byte, error) {
	var out [][]byte
	for off := 0; off < len(b); {
		if len(b)-off < 12 {
			return out, fmt.Errorf("%w: truncated block header at offset %d", ErrMalformed, off)
		}
		typ := binary.LittleEndian.Uint32(b[off:])
		n := binary.LittleEndian.Uint32(b[off+4:])
		if off == 0 && typ != blockSectionHeader {
			return out, fmt.Errorf("%w: no section header block", ErrMalformed)
		}
		if typ == blockSectionHeader && binary.LittleEndian.Uint32(b[off+8:]) != 0x1A2B3C4D {
			return out, fmt.Errorf("%w: big-endian or unknown byte-order magic at offset %d", ErrMalformed, off)
		}
		if n < 12 || n%4 != 0 || uint64(n) > uint64(len(b)-off) {
			return out, fmt.Errorf("%w: block length %d at offset %d", ErrMalformed, n, off)
		}
		if binary.LittleEndian.Uint32(b[off+int(n)-4:]) != n {
			return out, fmt.Errorf("%w: trailing length differs at offset %d", ErrMalformed, off)
		}
		if typ == blockDecryptionSecrets {
			if n < 20 {
				return out, fmt.Errorf("%w: short decryption-secrets block at offset %d", ErrMalformed, off)
			}
			stype := binary.LittleEndian.Uint32(b[off+8:])
			slen := binary.LittleEndian.Uint32(b[off+12:])
			if uint64(slen) > uint64(n)-20 {
				return out, fmt.Errorf("%w: secrets length %d exceeds block at offset %d", ErrMalformed, slen, off)
			}
			if stype == secretsTLSKeyLog {
				out = append(out, append([]byte(nil), b[off+16:off+16+int(slen)]...))
			}
		}
		off += int(n)
	}
	return out, nil
}
