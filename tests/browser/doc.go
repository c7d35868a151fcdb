// Package browser tests the demo page (package web) in a real Chromium driven with chromedp: two pages play
// alice and bob against the real ringer binary, and every step of a ring shows on both, push by push.
//
// Chromium comes from Debian (chromium, chromium-driver): the tests install it with apt-get when it is missing,
// and skip only where apt-get itself is unavailable. RINGER_CHROMIUM names another Chromium or Chrome binary.
// With RINGER_UPDATE_SCREENSHOTS=1 the tests write their screenshots to docs/screenshots (the README shows
// one); otherwise to the test's artifact directory (go test -artifacts keeps them).
package browser
