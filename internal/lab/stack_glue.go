package lab

// WithIPv6 returns o with IPv6 in the lab (Options.IPv6) turned on or off.
func WithIPv6(o Options, on bool) Options {
	o.IPv6 = on
	return o
}
