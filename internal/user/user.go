package user

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// User is a resolved account.
type User struct {
	Name   string
	UID    int
	GID    int
	Groups []int // supplementary groups from /etc/group membership
	Home   string
}

type passwdEntry struct {
	name     string
	uid, gid int
	home     string
}

type groupEntry struct {
	name    string
	gid     int
	members []string
}

// Resolve resolves a USER spec ("", "name", "uid", "name:group", "uid:gid",
// "uid:group") against etc/passwd and etc/group under root. "" means root.
// As Docker: a numeric uid missing from passwd runs with gid 0 and home "/";
// a name missing from passwd is an error.
func Resolve(root, spec string) (User, error) {
	if spec == "" {
		spec = "0"
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	users, err := readPasswd(root)
	if err != nil {
		return User{}, err
	}
	u := User{Home: "/"}
	if id, numeric, err := ParseID(userPart); err != nil {
		return User{}, fmt.Errorf("user %q: %w", spec, err)
	} else if numeric {
		u.UID = id
		if e, ok := findUID(users, id); ok {
			u.Name, u.GID, u.Home = e.name, e.gid, e.home
		}
	} else {
		e, ok := findName(users, userPart)
		if !ok {
			return User{}, fmt.Errorf("unable to find user %s: no matching entries in passwd file", userPart)
		}
		u.Name, u.UID, u.GID, u.Home = e.name, e.uid, e.gid, e.home
	}
	groups, err := readGroup(root)
	if err != nil {
		return User{}, err
	}
	if hasGroup {
		gid, err := resolveGroup(groups, groupPart)
		if err != nil {
			return User{}, err
		}
		u.GID = gid
	}
	if u.Name != "" {
		for _, g := range groups {
			for _, m := range g.members {
				if m == u.Name && g.gid != u.GID {
					u.Groups = append(u.Groups, g.gid)
				}
			}
		}
	}
	return u, nil
}

// ResolveChown resolves a COPY/ADD --chown spec (and the owner BuildKit
// gives WORKDIR's new directories) as Docker 20.10 does: "name" takes the
// user's primary group from passwd, a bare "uid" doubles as the gid, "a:b"
// takes names or numbers on either side. Unknown names do not fail: an
// unknown user is uid 0 and an unknown group falls back to the user's gid,
// and ":g" is user 0.
func ResolveChown(root, spec string) (uid, gid int, err error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	id, numeric, err := ParseID(userPart)
	if err != nil {
		return 0, 0, fmt.Errorf("--chown=%s: %w", spec, err)
	}
	switch {
	case userPart == "":
		uid, gid = 0, 0
	case numeric:
		uid, gid = id, id
	default:
		users, err := readPasswd(root)
		if err != nil {
			return 0, 0, err
		}
		if e, ok := findName(users, userPart); ok {
			uid, gid = e.uid, e.gid
		}
	}
	if hasGroup && groupPart != "" {
		groups, err := readGroup(root)
		if err != nil {
			return 0, 0, err
		}
		g, err := resolveGroup(groups, groupPart)
		if errors.Is(err, ErrIDRange) {
			return 0, 0, fmt.Errorf("--chown=%s: %w", spec, err)
		}
		if err == nil {
			gid = g
		}
	}
	return uid, gid, nil
}

func resolveGroup(groups []groupEntry, spec string) (int, error) {
	if id, numeric, err := ParseID(spec); err != nil {
		return 0, err
	} else if numeric {
		return id, nil
	}
	for _, g := range groups {
		if g.name == spec {
			return g.gid, nil
		}
	}
	return 0, fmt.Errorf("unable to find group %s: no matching entries in group file", spec)
}

// MaxID is the largest uid or gid, as runc has it: the kernel's ids are
// 32 bits, but -1 (4294967295) means "unchanged" to setuid and chown, and
// a number cut to 32 bits would be another id altogether.
const MaxID = 1<<31 - 1

// ErrIDRange is a numeric uid or gid outside 0..MaxID.
var ErrIDRange = fmt.Errorf("uids and gids must be in range 0-%d", MaxID)

// ParseID reads a uid or gid. numeric is whether s is a number at all
// (digits, with an optional sign) rather than a name; a number outside
// 0..MaxID is ErrIDRange: left to Atoi, "-1" would run as root (setuid(-1)
// changes nothing) and 2^32 would chown to 0 once cut to 32 bits.
func ParseID(s string) (id int, numeric bool, err error) {
	digits := strings.TrimLeft(s, "+-")
	if digits == "" || len(s)-len(digits) > 1 || strings.Trim(digits, "0123456789") != "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > MaxID {
		return 0, true, fmt.Errorf("%s: %w", s, ErrIDRange)
	}
	return int(n), true, nil
}

func findUID(users []passwdEntry, uid int) (passwdEntry, bool) {
	for _, e := range users {
		if e.uid == uid {
			return e, true
		}
	}
	return passwdEntry{}, false
}

func findName(users []passwdEntry, name string) (passwdEntry, bool) {
	for _, e := range users {
		if e.name == name {
			return e, true
		}
	}
	return passwdEntry{}, false
}

// openInRoot opens rel inside root; a missing file reads as empty, as it
// does for Docker (an image without /etc/passwd can still run as uid 0).
func openInRoot(root, rel string) (io.ReadCloser, error) {
	p, err := securejoin.SecureJoin(root, rel)
	if err != nil {
		return nil, fmt.Errorf("resolve %s in root: %w", rel, err)
	}
	f, err := os.Open(p)
	if os.IsNotExist(err) {
		return io.NopCloser(strings.NewReader("")), nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", rel, err)
	}
	return f, nil
}

func readPasswd(root string) ([]passwdEntry, error) {
	var out []passwdEntry
	err := readColonFile(root, "/etc/passwd", func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid, home: "/"}
		if len(f) > 5 && f[5] != "" {
			e.home = f[5]
		}
		out = append(out, e)
	})
	return out, err
}

func readGroup(root string) ([]groupEntry, error) {
	var out []groupEntry
	err := readColonFile(root, "/etc/group", func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			return
		}
		g := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		out = append(out, g)
	})
	return out, err
}

func readColonFile(root, rel string, fn func([]string)) error {
	r, err := openInRoot(root, rel)
	if err != nil {
		return err
	}
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", rel, err)
	}
	return nil
}
