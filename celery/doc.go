// Package celery implements the Celery task protocol as it travels over a
// kombu Redis transport: the message envelope, protocol v1 and v2 task
// messages, result metadata and Celery's exception encoding.
//
// The package knows the wire format only. It opens no connections; the Redis
// broker and result backend live in the broker and backend packages.
//
// Compatibility targets are Celery 5.2.6 / kombu 5.2.4 and the newer 5.3–5.5
// releases (extra headers, __type__ JSON markers, zone offsets in dates).
package celery
