// Certificates for the test peers, made with openssl at test time: a test CA
// and a server certificate it signs for localhost and 127.0.0.1 (what
// atlas.xml's <CABundle> trusts), and a self-signed certificate for the same
// names that nothing trusts.
import { execFileSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const SAN = 'subjectAltName=DNS:localhost,IP:127.0.0.1';

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** Resolves {dir, caFile, cert, key, selfSignedCert, selfSignedKey, remove()}. */
export async function makeTlsFiles() {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'atrium-tls-'));
  openssl(['req', '-x509', ...ecKey, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
    '-subj', '/CN=Atrium Test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', ...ecKey, '-keyout', 'server.key', '-out', 'server.csr',
    '-subj', '/CN=localhost'], dir);
  await fsp.writeFile(path.join(dir, 'server.ext'),
    `${SAN}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
    '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext'], dir);
  openssl(['req', '-x509', ...ecKey, '-keyout', 'self.key', '-out', 'self.pem', '-days', '2',
    '-subj', '/CN=localhost', '-addext', SAN], dir);
  const read = (f) => fsp.readFile(path.join(dir, f));
  return {
    dir,
    caFile: path.join(dir, 'ca.pem'),
    cert: await read('server.pem'),
    key: await read('server.key'),
    selfSignedCert: await read('self.pem'),
    selfSignedKey: await read('self.key'),
    remove: () => fsp.rm(dir, { recursive: true, force: true }),
  };
}
