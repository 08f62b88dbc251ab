// Package afpacket sends and receives floatip's ARP frames (package arp's
// codec) on a Linux AF_PACKET socket bound to one interface.
//
// The socket itself comes from github.com/mdlayher/packet. Written here by
// hand, because no library knows floatip's frames, are two small pieces:
//
//   - a classic BPF socket filter (filter.go) that drops, in the kernel,
//     the routine probes standbys unicast to a holder: with many groups
//     they are most of what a holder would read, and the kernel answers
//     them without the daemon. It is assembled with golang.org/x/net/bpf
//     from offsets of arp's frame layout, and tested by running it in
//     that package's BPF virtual machine.
//   - the PACKET_IGNORE_OUTGOING socket option, which mdlayher/packet does
//     not expose, so our own transmissions are not looped back to us.
//
// It is a package of its own so that the codec, the election machine that
// uses it and the configuration build and test on any OS; the socket files
// are Linux only.
package afpacket
