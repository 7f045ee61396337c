// The demo's rooms: channels named room:NAME, which demo tokens allow
// (their "channels" claim is ["room:*"]).

export const ROOMS = ['general', 'design', 'random'];

export const channelOf = (room) => `room:${room}`;
