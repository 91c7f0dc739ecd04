mod download;
mod info;
mod owners;
mod publish;
mod search;
mod tarball;
mod yank;
