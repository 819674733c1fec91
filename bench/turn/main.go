// Command turnbench runs callsign's TURN relay for bench/turn/run.sh, which
// measures it against coturn with coturn's turnutils_uclient. It is a
// benchmark harness, not part of the product.
//
//	turnbench -listen 127.0.0.1:34780 -secret S            # serve until SIGINT/SIGTERM
//	turnbench -secret S -creds bench -ttl 1h               # print "<username> <password>"
//
// The limits are opened wide because every benchmark client comes from
// 127.0.0.1 and shares one user name.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/callsign/callsign/turn"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "turnbench:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "UDP address to serve TURN on")
	secret := flag.String("secret", "", "REST API shared secret (at least 16 bytes)")
	realm := flag.String("realm", "callsign", "TURN realm")
	creds := flag.String("creds", "", "print credentials for this user id and exit")
	ttl := flag.Duration("ttl", time.Hour, "credential lifetime")
	listeners := flag.Int("listeners", 0, "UDP sockets sharing the port (0 = default)")
	buffer := flag.Int("buffer", 0, "socket buffer bytes (0 = default 4 MiB, -1 = OS default)")
	minPort := flag.Uint("min-port", 0, "lowest relay port (0 = any)")
	maxPort := flag.Uint("max-port", 0, "highest relay port (0 = any)")
	verbose := flag.Bool("v", false, "log at debug level")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the serving time to this file")
	flag.Parse()

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	s, err := turn.New(turn.Config{
		ListenUDP:             *listen,
		RelayPortMin:          uint16(*minPort),
		RelayPortMax:          uint16(*maxPort),
		Realm:                 *realm,
		Secret:                []byte(*secret),
		CredentialTTL:         *ttl,
		MaxAllocationsPerUser: 100000,
		MaxAllocationsPerIP:   100000,
		MaxAllocations:        100000,
		AllocationRate:        100000,
		AllocationBurst:       100000,
		AllowLoopbackPeers:    true,
		Listeners:             *listeners,
		SocketBuffer:          *buffer,
		Logger:                log,
	})
	if err != nil {
		return err
	}
	if *creds != "" {
		c := s.Credentials(*creds)
		fmt.Println(c.Username, c.Password)
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := s.Start(ctx); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Println("ready", s.Addr())
	<-ctx.Done()
	return s.Close()
}
