//go:build tools

// Package tools only pins the command that build-binaries.sh compiles.
package tools

import _ "go.etcd.io/etcd/server/v3"
