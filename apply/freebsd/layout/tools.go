package layout

import (
	"bufio"
	"bytes"
	"regexp"
	"strconv"
	"strings"
)

var (
	fileLineMsg = regexp.MustCompile(`^(.+?):(\d+): (.*)$`)  // pfctl, sh: FILE:LINE: msg
	shLineMsg   = regexp.MustCompile(`^(.+?): (\d+): (.*)$`) // FreeBSD sh: FILE: LINE: msg
	jailLineMsg = regexp.MustCompile(`^jail: (.+) line (\d+): (.*)$`)
)

// ParseToolErrors turns a checker's stderr into FileErrors. name maps the
// file names the tool printed (staging or temp paths) back to host paths;
// file is blamed for lines that name no file. pfctl prints FILE:LINE:,
// FreeBSD sh FILE: LINE:, jail(8) "jail: FILE line N:".
func ParseToolErrors(stderr []byte, file string, name func(string) string) []error {
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	for sc.Scan() {
		ln := strings.TrimSpace(sc.Text())
		if ln == "" {
			continue
		}
		var m []string
		for _, re := range []*regexp.Regexp{jailLineMsg, shLineMsg, fileLineMsg} {
			if m = re.FindStringSubmatch(ln); m != nil {
				break
			}
		}
		if m != nil && !strings.HasPrefix(m[1], "pfctl") {
			n, _ := strconv.Atoi(m[2])
			errs = append(errs, &FileError{File: name(m[1]), Line: n, Msg: name(m[3])})
			continue
		}
		msg := ln
		for _, p := range []string{"pfctl: ", "jail: ", "sh: "} {
			msg = strings.TrimPrefix(msg, p)
		}
		errs = append(errs, &FileError{File: file, Msg: name(msg)})
	}
	return errs
}
