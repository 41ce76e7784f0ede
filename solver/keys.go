package solver

import (
	"encoding/json"

	digest "github.com/opencontainers/go-digest"
)

// keyInput is the canonical form a cache key hashes. JSON of a struct with
// fixed field order is canonical enough: the same inputs always encode to the
// same bytes, on any machine.
type keyInput struct {
	Version int           `json:"v"`
	Parent  digest.Digest `json:"parent,omitempty"`
	Kind    string        `json:"kind"`
	Op      any           `json:"op,omitempty"`
	Input   digest.Digest `json:"input,omitempty"`
}

// keyVersion changes whenever what a key covers changes, so records made by
// an older builder are never mistaken for current ones.
const keyVersion = 1

func cacheKey(parent digest.Digest, kind string, op any, input digest.Digest) digest.Digest {
	b, err := json.Marshal(keyInput{Version: keyVersion, Parent: parent, Kind: kind, Op: op, Input: input})
	if err != nil {
		// Ops are plain structs of strings and slices; encoding cannot fail.
		panic("encode cache key: " + err.Error())
	}
	return digest.FromBytes(b)
}
