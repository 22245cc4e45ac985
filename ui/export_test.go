package ui

// EventsPerPage lets tests page the audit log with small pages.
var EventsPerPage = &eventsPerPage
