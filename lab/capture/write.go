package capture

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// File is everything a capture file holds.
type File struct {
	Experiment  string
	Description string
	Interface   string
	Snaplen     int
	Secrets     [][]byte // NSS key logs, one decryption-secrets block each
	Packets     []*Packet
}

// WriteFile writes f as pcapng to path, creating its directory. The file is
// written to a temporary name and renamed, so a reader never sees half a file.
func WriteFile(path string, f File) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp, f); err != nil {
		tmp.Close()
		return fmt.Errorf("capture: writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("capture: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	return nil
}

func write(w *os.File, f File) error {
	ifname := f.Interface
	if ifname == "" {
		ifname = "lo"
	}
	snap := f.Snaplen
	if snap == 0 {
		snap = 262144
	}
	intf := pcapgo.NgInterface{
		Name:                ifname,
		Description:         fmt.Sprintf("statelab %s: loopback of the lab's network namespace", f.Experiment),
		OS:                  runtime.GOOS,
		LinkType:            layers.LinkTypeEthernet,
		SnapLength:          uint32(snap),
		TimestampResolution: 9,
	}
	comment := "statelab " + f.Experiment
	if f.Description != "" {
		comment += ": " + f.Description
	}
	ng, err := pcapgo.NewNgWriterInterface(w, intf, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Hardware:    runtime.GOARCH,
		OS:          runtime.GOOS,
		Application: "statelab",
		Comment:     comment,
	}})
	if err != nil {
		return err
	}
	for _, s := range f.Secrets {
		if err := ng.WriteDecryptionSecretsBlock(pcapgo.DSB_SECRETS_TYPE_TLS, s); err != nil {
			return err
		}
	}
	for _, p := range f.Packets {
		ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: len(p.Data)}
		if err := ng.WritePacketWithOptions(ci, p.Data, pcapgo.NgPacketOptions{Comments: p.Comments}); err != nil {
			return err
		}
	}
	return ng.Flush()
}
