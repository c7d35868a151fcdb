package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ringer-dev/ringer/calls"
	"github.com/ringer-dev/ringer/wire"
)

// Token roles (API.md, "Authentication").
const (
	RoleUser  = "user"
	RoleAdmin = "admin"
)

// TokenClaims is what a ringer token says about its bearer: a user (UserID set) or the backend (Server true).
type TokenClaims struct {
	UserID string
	Name   string
	Image  string
	Role   string
	Teams  []string
	Server bool
	// Expires is the token's exp; zero for a server token minted without one.
	Expires time.Time
}

// jwtClaims is the wire form of TokenClaims. Server and UserID are checked together after parsing, since a
// token that says both is a forgery attempt or a bug, never a valid identity.
type jwtClaims struct {
	UserID string   `json:"user_id,omitempty"`
	Name   string   `json:"name,omitempty"`
	Image  string   `json:"image,omitempty"`
	Role   string   `json:"role,omitempty"`
	Teams  []string `json:"teams,omitempty"`
	Server bool     `json:"server,omitempty"`
	jwt.RegisteredClaims
}

// MintToken signs c with secret (HS256); c.Expires is ignored. ttl sets exp to now+ttl. ttl 0 makes a token
// without exp, for server tokens kept in a backend's configuration only: a user token must expire, since
// nothing else ends what a leaked one can do.
func MintToken(secret []byte, c TokenClaims, ttl time.Duration) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("mint token: empty secret")
	}
	if err := checkIdentity(c); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	if ttl == 0 && !c.Server {
		return "", errors.New("mint token: a user token needs a ttl: only server tokens may lack exp")
	}
	now := time.Now()
	jc := jwtClaims{
		UserID: c.UserID, Name: c.Name, Image: c.Image, Role: c.Role, Teams: c.Teams, Server: c.Server,
		RegisteredClaims: jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(now)},
	}
	if ttl < 0 {
		return "", fmt.Errorf("mint token: negative ttl %s", ttl)
	}
	if ttl > 0 {
		jc.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jc).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("mint token: sign: %w", err)
	}
	return s, nil
}

// checkIdentity is what makes claims a valid identity, shared by minting and parsing so that ringer never
// prints a token it would refuse.
func checkIdentity(c TokenClaims) error {
	if c.Server {
		if c.UserID != "" {
			return errors.New("a server token has no user_id")
		}
		return nil
	}
	if !userIDRe.MatchString(c.UserID) {
		return fmt.Errorf("user_id %q must match %s", c.UserID, userIDRe)
	}
	if c.Role != "" && c.Role != RoleUser && c.Role != RoleAdmin {
		return fmt.Errorf("role %q must be %q or %q", c.Role, RoleUser, RoleAdmin)
	}
	return nil
}

// bearer is the token of r's Authorization header.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", unauthorized("The Authorization header is missing; send \"Authorization: Bearer <JWT>\".")
	}
	scheme, raw, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return "", unauthorized("The Authorization header must be \"Bearer <JWT>\".")
	}
	return strings.TrimSpace(raw), nil
}

// verifyToken checks a bearer token and returns who it speaks for. Every failure is 401 except a token that is
// well signed but claims to be both the server and a user: that is 403, a valid token outside its rights. Only
// HS256 is accepted, so alg "none" and public-key algorithms (alg confusion) fail. A user token must carry
// exp; a server token may lack it (`ringer token --server --ttl 0`). Expired tokens are refused.
func verifyToken(raw string, secret []byte) (TokenClaims, error) {
	var jc jwtClaims
	_, err := jwt.ParseWithClaims(raw, &jc, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}))
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return TokenClaims{}, unauthorized("The token has expired.")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return TokenClaims{}, unauthorized("The token is not valid yet.")
	case err != nil:
		// The parser's own words may echo token parts; the caller learns only that the token is bad.
		return TokenClaims{}, unauthorized("The token is not valid.")
	}
	c := TokenClaims{UserID: jc.UserID, Name: jc.Name, Image: jc.Image, Role: jc.Role, Teams: jc.Teams, Server: jc.Server}
	if jc.ExpiresAt != nil {
		c.Expires = jc.ExpiresAt.Time
	}
	if c.Server && c.UserID != "" {
		return TokenClaims{}, forbidden("A user token may not claim to be the server.")
	}
	if err := checkIdentity(c); err != nil {
		return TokenClaims{}, unauthorized("The token's claims are not valid: %s.", err)
	}
	if !c.Server && c.Expires.IsZero() {
		return TokenClaims{}, unauthorized("A user token must carry exp (its expiry time); mint it with a lifetime, e.g. `ringer token --user ID --ttl 1h`.")
	}
	if c.Role == "" && !c.Server {
		c.Role = RoleUser
	}
	return c, nil
}

// verifiedTokens remembers the claims of tokens that verified under its secret, so that a client's every
// request does not decode and verify its token again: the same bytes under the same secret verify again,
// until their exp, which is checked on every use. Only tokens that verified are kept, so a client sending bad
// ones fills nothing, and at most max of them, none longer than verifiedTokenMaxLen: past max, an arbitrary
// one makes room.
type verifiedTokens struct {
	secret []byte
	max    int

	mu     sync.Mutex
	claims map[string]TokenClaims
}

// verifiedTokensMax bounds the tokens a process keeps verified: more than the clients of one API process
// send at once. verifiedTokenMaxLen is the longest token kept (a header may be far longer), so the tokens
// kept take a few tens of MB at worst.
const (
	verifiedTokensMax   = 10000
	verifiedTokenMaxLen = 4096
)

func newVerifiedTokens(secret []byte, max int) *verifiedTokens {
	return &verifiedTokens{secret: secret, max: max, claims: map[string]TokenClaims{}}
}

// check answers raw's claims: kept ones while their exp is ahead of now, else verifyToken's, kept when they
// verify. The claims it answers are the caller's own: none shares its Teams with the kept copy.
func (v *verifiedTokens) check(raw string, now time.Time) (TokenClaims, error) {
	v.mu.Lock()
	c, ok := v.claims[raw]
	if ok && !c.Expires.IsZero() && !now.Before(c.Expires) {
		delete(v.claims, raw) // verifyToken answers why it no longer passes
		ok = false
	}
	v.mu.Unlock()
	if ok {
		c.Teams = slices.Clone(c.Teams)
		return c, nil
	}
	c, err := verifyToken(raw, v.secret)
	if err != nil || len(raw) > verifiedTokenMaxLen {
		return c, err
	}
	kept := c
	kept.Teams = slices.Clone(c.Teams)
	v.mu.Lock()
	if len(v.claims) >= v.max {
		for k := range v.claims {
			delete(v.claims, k)
			break
		}
	}
	v.claims[raw] = kept
	v.mu.Unlock()
	return c, nil
}

// actor builds the calls.Actor of a request. named is the user the request names (a body's user_id, a
// get-or-create's data.created_by_id, a ?user_id=), field is where it was named, for error messages.
//
// A user token acts as itself; naming another user is 403. A server token acts as the user it names, with
// Actor.Server kept true so calls grants the backend's rights; when required and nobody is named it is 400.
func actor(c TokenClaims, named, field string, required bool) (calls.Actor, error) {
	if !c.Server {
		if named != "" && named != c.UserID {
			return calls.Actor{}, forbidden("%s: a user token may act only as its own user %q.", field, c.UserID)
		}
		return calls.Actor{UserID: c.UserID, Name: c.Name, Image: c.Image, Role: c.Role, Teams: slices.Clone(c.Teams)}, nil
	}
	if named == "" {
		if required {
			return calls.Actor{}, fieldErr(wire.CodeInvalidField, field, "is required with a server token, to name the user it acts for")
		}
		return calls.Actor{Server: true}, nil
	}
	if !userIDRe.MatchString(named) {
		return calls.Actor{}, fieldErr(wire.CodeInvalidField, field, "must match %s", userIDRe)
	}
	return calls.Actor{UserID: named, Server: true}, nil
}
