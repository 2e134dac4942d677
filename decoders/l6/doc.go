// Package l6 decodes presentation layer handshakes: TLS ClientHello and
// ServerHello.
package l6
