package main

import (
	"github.com/urfave/cli/v2"

	"github.com/qagen/qagen/broker"
	"github.com/qagen/qagen/config"
	"github.com/qagen/qagen/rdb"
)

// The connection flags of every command that talks to Redis; d supplies
// the defaults ($CELERY_BROKER_URL, $CELERY_RESULT_BACKEND).

func brokerFlag(d config.Worker) cli.Flag {
	return &cli.StringFlag{Name: "broker", Usage: "broker URL", Value: d.BrokerURL, EnvVars: []string{config.EnvBrokerURL}, DefaultText: rdb.Redact(d.BrokerURL)}
}

func backendFlag(d config.Worker) cli.Flag {
	return &cli.StringFlag{Name: "result-backend", Usage: "result backend URL", Value: d.BackendURL, EnvVars: []string{config.EnvResultBackend}, DefaultText: rdb.Redact(d.BackendURL)}
}

func keyPrefixFlag() cli.Flag {
	return &cli.StringFlag{Name: "key-prefix", Usage: "kombu global_keyprefix of broker keys"}
}

// dialBroker opens a pool to --broker and the broker of --key-prefix on
// it, without a round trip (the pool dials on first use). Closing the
// broker's pool releases it.
func dialBroker(c *cli.Context, po rdb.PoolOptions) (*broker.Broker, rdb.Options, error) {
	opts, err := rdb.ParseURL(c.String("broker"))
	if err != nil {
		return nil, opts, err
	}
	pool := opts.NewPool(po)
	return broker.New(pool, broker.Options{DB: opts.DB, KeyPrefix: c.String("key-prefix")}), opts, nil
}
