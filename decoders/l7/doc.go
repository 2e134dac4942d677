// Package l7 decodes application layer messages: DNS and HTTP/1.x.
package l7
