"""Throwaway certificate authorities for TLS tests, made with the openssl command line
(Debian's openssl package): ECDSA P-256 keys, certificates valid for a day."""

import subprocess
from pathlib import Path


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


class TestCa:
    """A CA in `directory`/`name`/ (ca.crt, ca.key); issue() writes leaf certificates beside
    it, so that two CAs in one directory never overwrite each other's files."""

    def __init__(self, directory, name):
        self.dir = Path(directory) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.cert = self.dir / "ca.crt"
        self.key = self.dir / "ca.key"
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", str(self.key), "-out", str(self.cert), "-days", "1",
                 "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)

    def issue(self, name, dns_names=(), ip_addresses=()):
        """A certificate for both server and client authentication naming the given hosts;
        returns (certificate path, key path). `name` must not be "ca"."""
        cert, key, csr = (self.dir / f"{name}.crt", self.dir / f"{name}.key",
                          self.dir / f"{name}.csr")
        extensions = self.dir / f"{name}.ext"
        names = [f"DNS:{d}" for d in dns_names] + [f"IP:{ip}" for ip in ip_addresses]
        lines = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
                 "extendedKeyUsage=serverAuth,clientAuth"]
        if names:
            lines.append("subjectAltName=" + ",".join(names))
        extensions.write_text("\n".join(lines) + "\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}", cwd=self.dir)
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
                 "-CAcreateserial", "-out", str(cert), "-days", "1", "-sha256",
                 "-extfile", str(extensions), cwd=self.dir)
        return cert, key
