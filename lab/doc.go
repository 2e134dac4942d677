// Package lab builds the two-node mini-cluster of network namespaces that is
// layerscope's embedded default and test bed.
package lab
