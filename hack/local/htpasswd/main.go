// Command htpasswd prints one bcrypt htpasswd line for docker-registry's
// htpasswd auth: `user:$2a$...`. The password is read from stdin, never argv,
// so it does not show in process listings. Debian's apache2-utils (the usual
// htpasswd) is not installed here; golang.org/x/crypto/bcrypt is already a
// stateshift dependency.
//
// Usage: htpasswd USER < password-file
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "htpasswd:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 2 || os.Args[1] == "" || strings.Contains(os.Args[1], ":") {
		return fmt.Errorf("usage: htpasswd USER < password (USER must be non-empty, without ':')")
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("read password from stdin: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return fmt.Errorf("empty password on stdin")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("bcrypt: %w", err)
	}
	fmt.Printf("%s:%s\n", os.Args[1], hash)
	return nil
}
