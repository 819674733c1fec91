//go:build !unix

package msg

import "time"

func processCPU() time.Duration { return 0 }
