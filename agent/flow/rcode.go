package flow

import "strconv"

// Rcode is a DNS response code (RFC 1035, RFC 2136), as an L7 exchange of
// a DNS flow carries it in Exchange.Code.
type Rcode uint16

// DNS response codes with a name.
const (
	RcodeNoError Rcode = iota
	RcodeFormErr
	RcodeServFail
	RcodeNXDomain
	RcodeNotImp
	RcodeRefused
	RcodeYXDomain
	RcodeYXRRSet
	RcodeNXRRSet
	RcodeNotAuth
	RcodeNotZone
)

var rcodeNames = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
	"YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"}

// String returns the code's name as DNS tools print it (NXDOMAIN), or
// RCODE<n> for a code without one. The API, spans and the CLI show these;
// metrics label the first six in lower case (see Label).
func (c Rcode) String() string {
	if int(c) < len(rcodeNames) {
		return rcodeNames[c]
	}
	return "RCODE" + strconv.Itoa(int(c))
}

// NumLabeledRcodes is the number of codes, from NOERROR, that metrics
// label by name; the others are "other".
const NumLabeledRcodes = 6

// Label returns the code's label value in metrics: its name in lower case
// for the first NumLabeledRcodes codes, else "other".
func (c Rcode) Label() string {
	if c < NumLabeledRcodes {
		return rcodeLabels[c]
	}
	return "other"
}

var rcodeLabels = [NumLabeledRcodes]string{"noerror", "formerr", "servfail", "nxdomain", "notimp", "refused"}
