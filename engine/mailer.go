package engine

import (
	"context"
	"crypto/tls"
	"errors"
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

// Send delivers the message by SMTP (STARTTLS when the server offers it,
// as smtp.SendMail does). It runs in the caller's goroutine and stops when
// ctx ends: the connection is cut, so nothing of the send outlives it.
func (m *SMTPMailer) Send(ctx context.Context, to, subject, body string) (err error) {
	host, _, err := net.SplitHostPort(m.Addr)
	if err != nil {
		return fmt.Errorf("smtp: address %q: %w", m.Addr, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	// When ctx ends, every read and write on conn fails at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("smtp: %w (%v)", ctx.Err(), err)
		}
	}()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host}); err != nil {
			return err
		}
	}
	if m.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("smtp: server doesn't support AUTH")
		}
		if err := c.Auth(smtp.PlainAuth("", m.Username, m.Password, host)); err != nil {
			return err
		}
	}
	if err := c.Mail(m.From); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(formatMessage(m.From, to, subject, body))); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
