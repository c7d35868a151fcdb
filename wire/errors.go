package wire

// ErrorBody is the body of every non-2xx answer (API.md, "Errors").
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Status  int    `json:"status"`
}

// Error codes of the error body. They are part of the contract callers see, so they are named once, here,
// for the server that sends them and the client that tells them apart.
const (
	CodeInvalidJSON          = "invalid_json"           // the body is not one well-formed JSON value of the right shape
	CodeUnknownField         = "unknown_field"          // the body names a field the endpoint does not know
	CodeInvalidField         = "invalid_field"          // a field's value is missing, malformed or out of range
	CodeLimitExceeded        = "limit_exceeded"         // a size or count limit of API.md is passed
	CodeUnsupportedMediaType = "unsupported_media_type" // a body that says it is not JSON
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeConflict             = "conflict"
	CodeUnavailable          = "unavailable"
	CodeOverloaded           = "overloaded"   // a ring refused up front: rings cannot be delivered in time (Retry-After)
	CodeRateLimited          = "rate_limited" // a ring refused because its caller starts rings faster than RINGER_RING_RATE (Retry-After)
	CodeNotReady             = "not_ready"
	CodeInternal             = "internal"
)
