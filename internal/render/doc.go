// Package render prints the agent's API answers for a person: connection
// events as table lines or JSON lines, the node status summary and the
// diagnosis verdict. It imports only the standard library, golang.org/x/term,
// the API's types and the verdict engine, so both the agent binary and the portable
// operator client (kubectl-layerscope) link it on every OS.
package render
