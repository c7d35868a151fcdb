package providers

import "testing"

func TestTokenSuffixShowsOnlyTheEnd(t *testing.T) {
	cases := map[string]string{
		"f3c1a9b2d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d": "…2b3c4d",
		"abcdefghijkl": "…ghijkl",
		"abcd":         "…cd", // a short token still hides half of itself
		"":             "…",
	}
	for in, want := range cases {
		if got := TokenSuffix(in); got != want {
			t.Errorf("TokenSuffix(%q) = %q, want %q", in, got, want)
		}
	}
}
