//go:build !linux

package main

import "errors"

const epollAvailable = false

type epollSet struct{}

func newEpollSet(r *run, n int) (*epollSet, error) {
	return nil, errors.New("epoll reader is Linux only")
}

func (es *epollSet) attach(r *run, s *sub, w *wsConn) error {
	return errors.New("epoll reader is Linux only")
}

func (es *epollSet) stop() {}

func closeFD(fd int) {}

func writeFD(fd int, b []byte) error { return errors.New("epoll reader is Linux only") }
