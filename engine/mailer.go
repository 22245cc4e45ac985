package engine

import (
	"context"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Mailer delivers a message to one address.
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// OutboxMailer, the embedded default, writes each message as a file
// (mode 0600) under Dir.
type OutboxMailer struct {
	Dir  string
	From string
}

var _ Mailer = (*OutboxMailer)(nil)

// Send writes the message to <Dir>/<time>-<recipient>.eml.
func (m *OutboxMailer) Send(ctx context.Context, to, subject, body string) error {
	if err := os.MkdirAll(m.Dir, 0o700); err != nil {
		return err
	}
	from := m.From
	if from == "" {
		from = "berth@localhost"
	}
	msg := formatMessage(from, to, subject, body)
	name := fmt.Sprintf("%d-%s.eml", time.Now().UnixNano(), safeFileName(to))
	tmp := filepath.Join(m.Dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(msg), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(m.Dir, name))
}

func safeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '@' || r == '.' || r == '-' || r == '_' || r == '+' {
			return r
		}
		return '_'
	}, s)
}

func formatMessage(from, to, subject, body string) string {
	clean := func(s string) string { return strings.NewReplacer("\r", "", "\n", " ").Replace(s) }
	return "From: " + clean(from) + "\r\nTo: " + clean(to) + "\r\nSubject: " + clean(subject) +
		"\r\nDate: " + time.Now().UTC().Format(time.RFC1123Z) +
		"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
}

// SMTPMailer sends through an SMTP server.
type SMTPMailer struct {
	Addr, From, Username, Password string
}

var _ Mailer = (*SMTPMailer)(nil)

// Send delivers the message by SMTP.
func (m *SMTPMailer) Send(ctx context.Context, to, subject, body string) error {
	var auth smtp.Auth
	if m.Username != "" {
		host, _, _ := net.SplitHostPort(m.Addr)
		auth = smtp.PlainAuth("", m.Username, m.Password, host)
	}
	done := make(chan error, 1)
	go func() {
		done <- smtp.SendMail(m.Addr, auth, m.From, []string{to}, []byte(formatMessage(m.From, to, subject, body)))
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
