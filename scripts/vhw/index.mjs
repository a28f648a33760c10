// The virtual-hardware rig: a Debian sid kernel under qemu with the host's root, so tests reach
// real kernel drivers (gpio-sim, mac80211_hwsim, hci_vhci, rfkill). See scripts/vhw/README.md.
export { VhwError, cacheDir, ensureKernel } from './kernel.mjs'
export { ensureInitramfs, findBusybox, loadOrder, newc, INIT_MODULES } from './initramfs.mjs'
export { bootVm, vhwProblems, REPO_ROOT, GUEST_RESULTS, QEMU } from './vm.mjs'
