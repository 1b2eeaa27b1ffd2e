module github.com/leanauth/leanauth/clients/go

go 1.26.0

require (
	golang.org/x/oauth2 v0.38.0
	google.golang.org/protobuf v1.36.12
)
