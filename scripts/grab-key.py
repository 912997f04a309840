#!/usr/bin/env python3
# Holds a global key grab on $DISPLAY's root window, as another program's global shortcut does:
# grab-key.py KEYSYM MODIFIER... (such as `grab-key.py j control mod1` for Ctrl+Alt+J). Prints
# "grabbed" once the X server has granted it, then holds it until killed. Used by the desktop
# tests: the app must say that a shortcut another program holds cannot be its own.
import ctypes, ctypes.util, sys, time
from ctypes import c_int, c_uint, c_ulong, c_void_p, c_char_p
MASKS = {"shift": 1, "lock": 2, "control": 4, "mod1": 8, "mod2": 16, "mod4": 64}
x = ctypes.cdll.LoadLibrary(ctypes.util.find_library("X11") or "libX11.so.6")
x.XOpenDisplay.restype, x.XOpenDisplay.argtypes = c_void_p, [c_char_p]
x.XDefaultRootWindow.restype, x.XDefaultRootWindow.argtypes = c_ulong, [c_void_p]
x.XStringToKeysym.restype, x.XStringToKeysym.argtypes = c_ulong, [c_char_p]
x.XKeysymToKeycode.restype, x.XKeysymToKeycode.argtypes = ctypes.c_ubyte, [c_void_p, c_ulong]
x.XGrabKey.argtypes = [c_void_p, c_int, c_uint, c_ulong, c_int, c_int, c_int]
x.XSync.argtypes = [c_void_p, c_int]
d = x.XOpenDisplay(None)
if not d or len(sys.argv) < 2:
    sys.exit("usage: grab-key.py KEYSYM MODIFIER... (with $DISPLAY set)")
keycode = x.XKeysymToKeycode(d, x.XStringToKeysym(sys.argv[1].encode()))
mods = 0
for m in sys.argv[2:]:
    mods |= MASKS[m]
# As global-hotkey does: with and without Caps Lock and Num Lock.
for extra in (0, MASKS["lock"], MASKS["mod2"], MASKS["lock"] | MASKS["mod2"]):
    x.XGrabKey(d, keycode, mods | extra, x.XDefaultRootWindow(d), 0, 1, 1)
x.XSync(d, 0)
print("grabbed", flush=True)
while True:
    time.sleep(3600)
