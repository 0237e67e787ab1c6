package fleetctl

import (
	"strings"

	qr "github.com/piglig/go-qr"
)

// qrQuietZone is the light margin around the code, in modules. The
// standard asks for 4; 2 is what terminal renderers commonly print and
// phones read, and keeps the code small.
const qrQuietZone = 2

// terminalQR renders text as a QR code (github.com/piglig/go-qr encodes it,
// error correction level M) in Unicode half blocks, two module rows per
// line. Light modules are drawn and dark ones left blank, as `qrencode -t
// UTF8` does, so the code reads on the usual dark terminal; phones also
// read the inverted code a light terminal shows.
func terminalQR(text string) (string, error) {
	code, err := qr.EncodeText(text, qr.Medium)
	if err != nil {
		return "", err
	}
	size := code.Size()
	light := func(x, y int) bool {
		if x < 0 || y < 0 || x >= size || y >= size {
			return true // the quiet zone
		}
		return !code.Module(x, y)
	}
	var b strings.Builder
	for y := -qrQuietZone; y < size+qrQuietZone; y += 2 {
		for x := -qrQuietZone; x < size+qrQuietZone; x++ {
			top, bottom := light(x, y), light(x, y+1)
			if y+1 >= size+qrQuietZone {
				bottom = false // past the last row: nothing drawn
			}
			switch {
			case top && bottom:
				b.WriteRune('█')
			case top:
				b.WriteRune('▀')
			case bottom:
				b.WriteRune('▄')
			default:
				b.WriteRune(' ')
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}
