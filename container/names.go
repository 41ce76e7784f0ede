package container

import (
	"crypto/rand"
	"fmt"
	"math/big"
)

// Docker-style generated names, adjective_noun. The lists are ours; the
// shape is Docker's, so scripts that expect a name of that form keep
// working.
var (
	adjectives = []string{
		"amazing", "bold", "brave", "calm", "clever", "cool", "crisp", "eager",
		"fervent", "gentle", "happy", "hopeful", "jolly", "keen", "kind", "lucid",
		"merry", "modest", "nifty", "patient", "quiet", "quirky", "relaxed", "serene",
		"sharp", "steady", "sweet", "tender", "vivid", "wizardly", "zealous", "zen",
	}
	nouns = []string{
		"badger", "beacon", "canyon", "comet", "delta", "ember", "falcon", "fjord",
		"galaxy", "glacier", "harbor", "heron", "island", "lagoon", "lantern", "meadow",
		"meteor", "nebula", "orchid", "otter", "pebble", "pine", "quasar", "river",
		"sparrow", "summit", "tundra", "valley", "walrus", "willow", "yak", "zephyr",
	}
)

func pick(list []string) string {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(list))))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return list[n.Int64()]
}

// generateName returns a name taken() says is free: adjective_noun, with a
// number appended once a few tries collide, as Docker does.
func generateName(taken func(string) bool) string {
	for i := 0; ; i++ {
		n := pick(adjectives) + "_" + pick(nouns)
		if i >= 8 {
			n = fmt.Sprintf("%s%d", n, i)
		}
		if !taken(n) {
			return n
		}
	}
}
