package freebsd

// plainAssignments reports whether src is made only of lines that every
// POSIX sh parses: blank lines, comments, and one assignment per line,
// NAME=VALUE, where VALUE is plain characters, '...' or "..." (printable
// ASCII, and no $, ` or \ between double quotes), optionally followed by
// a comment. sh -n can only accept such a file, so the pre-check skips
// its process (one exec per rc.conf, of the host and of every jail; an
// exec is most of a pre-check's time). Anything else, also what sh would
// accept (expansions, continuations, commands), is left to sh -n.
func plainAssignments(src []byte) bool {
	for i := 0; i < len(src); {
		end := i
		for end < len(src) && src[end] != '\n' {
			end++
		}
		if !plainLine(src[i:end]) {
			return false
		}
		i = end + 1
	}
	return true
}

func plainLine(l []byte) bool {
	i := skipBlanks(l, 0)
	if i == len(l) || l[i] == '#' {
		return printable(l[i:])
	}
	// NAME: a letter or _, then letters, digits and _ (sh's is_name).
	n := i
	for i < len(l) && (l[i] == '_' || l[i] >= 'a' && l[i] <= 'z' || l[i] >= 'A' && l[i] <= 'Z' || i > n && l[i] >= '0' && l[i] <= '9') {
		i++
	}
	if i == n || i == len(l) || l[i] != '=' {
		return false
	}
	i++
	// VALUE: one word of plain characters and quoted parts.
	for i < len(l) && l[i] != ' ' && l[i] != '\t' {
		switch c := l[i]; {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(l) && l[j] != c && (c == '\'' || l[j] != '$' && l[j] != '`' && l[j] != '\\') {
				if l[j] < ' ' && l[j] != '\t' || l[j] >= 0x7f {
					return false
				}
				j++
			}
			if j == len(l) || l[j] != c {
				return false
			}
			i = j + 1
		case plainByte(c):
			i++
		default:
			return false
		}
	}
	i = skipBlanks(l, i)
	return i == len(l) || l[i] == '#' && printable(l[i:])
}

// plainByte: a character that is neither a shell metacharacter, a quote,
// an expansion, a glob or tilde nor a comment start.
func plainByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '_', '-', '.', '/', ':', ',', '+', '=', '@', '%':
		return true
	}
	return false
}

func skipBlanks(l []byte, i int) int {
	for i < len(l) && (l[i] == ' ' || l[i] == '\t') {
		i++
	}
	return i
}

// printable: no control character but tab (a comment with a carriage
// return or a NUL goes to sh -n).
func printable(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
