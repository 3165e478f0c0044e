package agent

import (
	"context"
	"errors"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/shale-dev/shale/metastore"
)

// errCode maps an error from the engine or the metastore to a Kafka error
// code: a *kerr.Error keeps its code, a missing topic is
// UNKNOWN_TOPIC_OR_PARTITION, a deadline is REQUEST_TIMED_OUT, and anything
// else is UNKNOWN_SERVER_ERROR, logged with op so an operator can see why.
func errCode(log *slog.Logger, op string, err error) int16 {
	var ke *kerr.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ke):
		return ke.Code
	case errors.Is(err, metastore.ErrTopicNotFound), errors.Is(err, metastore.ErrPartitionMissing):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	default:
		log.Warn("request failed", "op", op, "err", err)
		return kerr.UnknownServerError.Code
	}
}

// errMessage returns err's message for the ErrorMessage fields of responses,
// or nil when err is nil.
func errMessage(err error) *string {
	if err == nil {
		return nil
	}
	m := err.Error()
	return &m
}
