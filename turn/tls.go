package turn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// selfSignedValidity is how long a generated certificate is valid. Members
// pin it by hash (see Credentials.TLSCertSHA256) rather than check its
// chain, so the dates only matter to clients that verify it the usual way.
const selfSignedValidity = 10 * 365 * 24 * time.Hour

// maxCertFile caps the certificate file LoadOrCreateCertificate reads.
const maxCertFile = 64 << 10

// SelfSignedCertificate makes a new ECDSA P-256 certificate for TURN over
// TLS, naming ip (when not nil) as its subject alternative name.
func SelfSignedCertificate(ip net.IP) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("turn: tls key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("turn: tls serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "callsign TURN relay"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("turn: tls certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("turn: tls certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// LoadOrCreateCertificate returns the certificate and key kept in the PEM
// file at path, creating the file (mode 0600) with a new self-signed
// certificate for ip when it does not exist. The same certificate then
// survives restarts.
func LoadOrCreateCertificate(path string, ip net.IP) (tls.Certificate, error) {
	b, err := readCapped(path)
	if err == nil {
		c, err := tls.X509KeyPair(b, b)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("turn: %s: %w", path, err)
		}
		return c, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return tls.Certificate{}, fmt.Errorf("turn: %w", err)
	}
	c, err := SelfSignedCertificate(ip)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("turn: tls key: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".turn-tls-*")
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("turn: save certificate: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
	if _, err = tmp.Write(out); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("turn: save certificate: %w", err)
	}
	return c, nil
}

// LoadCertificate reads an operator's certificate chain and key from two
// PEM files.
func LoadCertificate(certFile, keyFile string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("turn: tls certificate: %w", err)
	}
	return c, nil
}

func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCertFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCertFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxCertFile)
	}
	return b, nil
}

// CertSHA256 is the SHA-256 of a certificate's DER encoding, the pin
// members check the relay's TLS certificate against.
func CertSHA256(der []byte) []byte {
	sum := sha256.Sum256(der)
	return sum[:]
}

// serverTLSConfig is the TLS configuration of the TURN-over-TLS listener.
func serverTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
}
