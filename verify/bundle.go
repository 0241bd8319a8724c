package verify

// Bundle is what verification hands out: a manifest whose every claim was
// checked, and the contents of every file it lists, already matched against
// their digests. Nothing else leaves this package.
type Bundle struct {
	Manifest Manifest
	// Files maps each manifest path to its verified contents.
	Files map[string][]byte
	// Signers are the key ids (see KeyID) of the distinct trusted keys
	// whose signatures were accepted.
	Signers []string
	// Envelope is the raw manifest.json (the DSSE envelope) as verified,
	// kept so a generation can be re-verified later.
	Envelope []byte
}
